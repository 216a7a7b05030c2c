# baton workflow tracer: loads an MLRun/KFP-style Python workflow file with stand-ins for `mlrun`
# and `kfp`, calls its handler with placeholder arguments, and records the steps it creates.
#
# Usage: python -B -c <this file> <workflow.py> <handler or ""> <graph name> <result.json>
#        [<project JSON: {"name", "params"} or "">]
#
# The result goes to <result.json>, never to stdout (user code may print):
#   {"graph": {...}}                       the WorkflowGraph, in its serde form
#   {"error": {"message", "hint", "file", "line"}}
# Standard library only: MLRun and KFP need not be installed.

import builtins
import importlib.abc
import importlib.util
import inspect
import json
import math
import os
import sys
import traceback
import types

WORKFLOW_FILE = os.path.abspath(sys.argv[1])
EXPLICIT_HANDLER = sys.argv[2]
GRAPH_NAME = sys.argv[3]
RESULT_FILE = sys.argv[4]
PROJECT_CONTEXT = json.loads(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[5] else {}
SHIM_FILE = sys._getframe().f_code.co_filename


class WorkflowError(Exception):
    """An error to report as-is, located at (file, line) in the user's code."""

    def __init__(self, message, hint=None, file=None, line=None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.file = file
        self.line = line


# The first refusal, kept even if user code swallows the exception: a refused construct must
# never be silently dropped from the graph.
FIRST_REFUSAL = []


def user_location():
    """The innermost frame of user code (not this shim, not the import machinery)."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_code.co_filename
        if name != SHIM_FILE and not name.startswith("<frozen"):
            return name, frame.f_lineno
        frame = frame.f_back
    return None, None


def refuse(what, hint=None):
    file, line = user_location()
    err = WorkflowError(what + " is not supported in a baton workflow", hint, file, line)
    if not FIRST_REFUSAL:
        FIRST_REFUSAL.append(err)
    raise err


# ---------------------------------------------------------------------------------------------
# Placeholders: pipeline parameters and step outputs.
# ---------------------------------------------------------------------------------------------

CONTROL_FLOW_HINT = (
    "a pipeline value is only known when the workflow runs; a Python `if` would pick one branch "
    "at load time. Guard the steps with `with dsl.Condition(<placeholder> <op> <value>):` instead"
)


class Placeholder:
    """A value known only at run time; renders as `{{args.x}}` or `{{steps.s.outputs.k}}`."""

    __slots__ = ("_text",)

    def __init__(self, text):
        object.__setattr__(self, "_text", text)

    def __str__(self):
        return self._text

    def __repr__(self):
        return self._text

    def __format__(self, spec):
        if spec:
            refuse("formatting pipeline placeholder `%s` with `:%s`" % (self._text, spec),
                   "format the value in the step's handler; in the workflow use plain "
                   "`{placeholder}`")
        return self._text

    def __add__(self, other):
        if isinstance(other, str):
            return self._text + other
        if isinstance(other, Placeholder):
            return self._text + other._text
        refuse("arithmetic on pipeline placeholder `%s`" % self._text, CONTROL_FLOW_HINT)

    def __radd__(self, other):
        if isinstance(other, str):
            return other + self._text
        refuse("arithmetic on pipeline placeholder `%s`" % self._text, CONTROL_FLOW_HINT)

    def __bool__(self):
        refuse("using pipeline placeholder `%s` as a Python truth value" % self._text,
               CONTROL_FLOW_HINT)

    def __eq__(self, other):
        return Comparison(self, "==", other)

    def __ne__(self, other):
        return Comparison(self, "!=", other)

    def __lt__(self, other):
        return Comparison(self, "<", other)

    def __le__(self, other):
        return Comparison(self, "<=", other)

    def __gt__(self, other):
        return Comparison(self, ">", other)

    def __ge__(self, other):
        return Comparison(self, ">=", other)

    __hash__ = object.__hash__

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        refuse("`.%s` on pipeline placeholder `%s`" % (name, self._text), CONTROL_FLOW_HINT)

    def __setattr__(self, name, value):
        refuse("setting `.%s` on pipeline placeholder `%s`" % (name, self._text),
               CONTROL_FLOW_HINT)


def _refuse_op(op):
    def method(self, *args):
        refuse("`%s` on pipeline placeholder `%s`" % (op, self._text), CONTROL_FLOW_HINT)

    return method


for _name, _op in [
    ("__sub__", "-"), ("__rsub__", "-"), ("__mul__", "*"), ("__rmul__", "*"),
    ("__truediv__", "/"), ("__rtruediv__", "/"), ("__floordiv__", "//"),
    ("__rfloordiv__", "//"), ("__mod__", "%"), ("__rmod__", "%"), ("__pow__", "**"),
    ("__rpow__", "**"), ("__neg__", "unary -"), ("__pos__", "unary +"), ("__abs__", "abs()"),
    ("__int__", "int()"), ("__float__", "float()"), ("__index__", "use as an index"),
    ("__len__", "len()"), ("__iter__", "iteration"), ("__contains__", "`in`"),
    ("__getitem__", "indexing"), ("__call__", "calling"), ("__and__", "&"), ("__or__", "|"),
    ("__round__", "round()"),
]:
    setattr(Placeholder, _name, _refuse_op(_op))


def render_operand(value):
    if isinstance(value, Placeholder):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, float) and not math.isfinite(value):
            refuse("the non-finite number `%r` in a condition" % value,
               "use a finite number")
        return json.dumps(value)
    refuse("a `%s` operand in a condition" % type(value).__name__,
           "compare a pipeline placeholder with a string, number, boolean or None")


class Comparison:
    """`placeholder OP value`, the argument of `dsl.Condition` / `dsl.If`."""

    def __init__(self, lhs, op, rhs):
        self.lhs, self.op, self.rhs = lhs, op, rhs

    def render(self):
        return "%s %s %s" % (render_operand(self.lhs), self.op, render_operand(self.rhs))

    def __bool__(self):
        refuse("using the comparison `%s` in Python control flow" % self.render(),
               CONTROL_FLOW_HINT)

    def __repr__(self):
        return self.render()


# ---------------------------------------------------------------------------------------------
# The recorded graph.
# ---------------------------------------------------------------------------------------------

STEPS = []
STEP_NAMES = set()
CONDITIONS = []


def unique_step_name(name):
    # KFP's rule: the first keeps its name, later ones get `-2`, `-3`, ...
    candidate, index = name, 1
    while candidate in STEP_NAMES:
        index += 1
        candidate = "%s-%d" % (name, index)
    STEP_NAMES.add(candidate)
    return candidate


def to_json_value(value, where):
    if isinstance(value, Placeholder):
        return str(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            refuse("the non-finite number `%r` in %s" % (value, where),
               "use a finite number")
        return value
    if isinstance(value, (list, tuple)):
        return [to_json_value(v, where) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                refuse("the non-string key `%r` in %s" % (k, where),
               "use string keys")
            out[k] = to_json_value(v, where)
        return out
    if isinstance(value, Comparison):
        refuse("a comparison `%s` as a value in %s" % (value.render(), where), CONTROL_FLOW_HINT)
    refuse("a `%s` value in %s" % (type(value).__name__, where),
           "use strings, numbers, booleans, lists, dicts or pipeline placeholders")


class StepOutputs:
    def __init__(self, step, declared):
        self._step = step
        self._declared = declared

    def __repr__(self):
        # Readable at trace time: the declared outputs and the references they render as.
        return "{%s}" % ", ".join("%r: %r" % (key, "{{steps.%s.outputs.%s}}" % (self._step, key))
                                  for key in self._declared)

    __str__ = __repr__

    def __getitem__(self, key):
        if not isinstance(key, str):
            refuse("output key `%r` of step `%s` (keys are strings)" % (key, self._step),
               'read an output with `step.outputs["key"]`')
        return Placeholder("{{steps.%s.outputs.%s}}" % (self._step, key))

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        refuse("`outputs.%s` on step `%s`" % (name, self._step),
               'read an output with `step.outputs["key"]`')


class StepHandle:
    """What run_function / as_step / build_function / deploy_function return."""

    def __init__(self, record):
        self._record = record
        self.outputs = StepOutputs(record["name"], record.get("outputs", []))

    @property
    def name(self):
        return self._record["name"]

    def after(self, *others):
        names = []
        for other in others:
            if isinstance(other, StepHandle):
                names.append(other.name)
            elif isinstance(other, Condition):
                if other._open:
                    refuse("`.after()` on step `%s` with the `%s` group it is inside"
                           % (self.name, other.construct),
                           "call `.after(group)` after the `with` block ends")
                if not other._entered:
                    refuse("`.after()` on step `%s` with a `%s` that was never entered"
                           % (self.name, other.construct),
                           "use the group from `with %s(...) as group:`" % other.construct)
                # KFP: after a group = after every step recorded in it (and in its inner
                # groups), whether or not they run.
                names.extend(other._steps)
            else:
                refuse("`.after(%r)` on step `%s`" % (other, self.name),
                       "pass step objects returned by run_function/as_step, or a "
                       "`with dsl.Condition(...) as group:` group")
        after = self._record.setdefault("after", [])
        for name in names:
            if name not in after:
                after.append(name)
        if not after:
            del self._record["after"]
        return self

    def set_retry(self, num_retries, policy=None, backoff_duration=None, backoff_factor=None,
                  backoff_max_duration=None):
        for arg, value in [("policy", policy), ("backoff_factor", backoff_factor),
                           ("backoff_max_duration", backoff_max_duration)]:
            if value is not None:
                refuse("`set_retry(%s=...)` on step `%s`" % (arg, self.name),
                       "use `set_retry(num_retries, backoff_duration=...)`")
        if not isinstance(num_retries, int) or isinstance(num_retries, bool) or num_retries < 0:
            refuse("`set_retry(%r)` on step `%s` (num_retries must be an int >= 0)"
                   % (num_retries, self.name),
               "pass the number of retries, e.g. `set_retry(2)`")
        retries = {"limit": num_retries}
        if backoff_duration is not None:
            retries["backoff"] = duration_text(backoff_duration, "set_retry(backoff_duration)")
        self._record["retries"] = retries
        return self

    def set_timeout(self, seconds):
        self._record["timeout"] = duration_text(seconds, "set_timeout()")
        return self

    def __bool__(self):
        return True

    def __repr__(self):
        return "<step %s>" % self._record["name"]

    __str__ = __repr__

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        refuse("`.%s` on step `%s`" % (name, self._record["name"]),
               'a step has `.outputs["key"]`, `.after(...)`, `.set_retry(n)` and '
               "`.set_timeout(seconds)`")


def duration_text(value, where):
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        if isinstance(value, float) and not math.isfinite(value):
            refuse("the duration `%r` in %s" % (value, where),
               "use seconds or text such as `30s`")
        millis = int(round(value * 1000))
        return "%ds" % (millis // 1000) if millis % 1000 == 0 else "%dms" % millis
    if isinstance(value, str) and value.strip():
        return value
    refuse("the duration `%r` in %s" % (value, where), "use seconds or text such as `30s`")


# Keyword arguments per call: (positional order, supported, ignored because they do not change
# what the step computes). Any other argument that is given (not None) is refused by name.
RUN_FUNCTION_ARGS = [
    "function", "handler", "name", "params", "hyperparams", "hyper_param_options", "inputs",
    "outputs", "workdir", "labels", "base_task", "watch", "local", "verbose", "selector",
    "project_object", "auto_build", "schedule", "artifact_path", "notifications", "returns",
    "builder_env", "reset_on_run", "output_path", "retry",
]
AS_STEP_ARGS = [
    "runspec", "handler", "name", "project", "params", "hyperparams", "selector",
    "hyper_param_options", "inputs", "outputs", "workdir", "artifact_path", "image", "labels",
    "use_db", "verbose", "scrape_metrics", "returns", "auto_build",
]
BUILD_FUNCTION_ARGS = [
    "function", "with_mlrun", "skip_deployed", "image", "base_image", "commands", "secret_name",
    "requirements", "mlrun_version_specifier", "builder_env", "project_object",
    "overwrite_build_params", "requirements_file", "extra_args", "force_build",
]
DEPLOY_FUNCTION_ARGS = [
    "function", "models", "env", "tag", "verbose", "builder_env", "project_object", "mock",
]
RUN_SUPPORTED = {"function", "handler", "name", "params", "inputs", "outputs", "hyperparams",
                 "hyper_param_options", "selector"}
RUN_IGNORED = {"watch", "local", "verbose", "labels", "project_object", "auto_build",
               "notifications", "reset_on_run", "use_db", "scrape_metrics", "project"}
HINTS = {
    "schedule": "schedule the whole workflow instead of one step",
    "retry": "use `step.set_retry(n)` on the returned step",
    "returns": "declare output keys with `outputs=[...]`",
}


def is_unset(value):
    """MLRun's "not given" defaults: None, False, "" and empty collections."""
    if value is None or value is False:
        return True
    return isinstance(value, (str, list, tuple, dict)) and len(value) == 0


def bind(call, order, args, kwargs, supported, ignored):
    if len(args) > len(order):
        refuse("`%s` with %d positional arguments" % (call, len(args)),
               "pass the arguments after the first ones by keyword")
    bound = dict(zip(order, args))
    for key, value in kwargs.items():
        if key in bound:
            refuse("`%s` with argument `%s` given twice" % (call, key),
                   "give each argument once")
        bound[key] = value
    for key, value in bound.items():
        if key in supported or key in ignored or is_unset(value):
            continue
        takes = "`%s` takes: %s" % (call, ", ".join(k for k in order if k in supported))
        if key not in order:
            refuse("`%s(%s=...)`: unknown argument `%s`" % (call, key, key), takes)
        refuse("`%s(%s=...)`" % (call, key), HINTS.get(key, takes))
    return {k: v for k, v in bound.items() if k in supported and v is not None}


def function_name(value, call):
    if isinstance(value, FunctionHandle):
        return value._name
    if isinstance(value, str) and value and "{{" not in value:
        return value
    refuse("`%s` of `%s` (expected a function name or funcs[\"name\"])" % (call, value),
               'pass a function name such as "trainer", or funcs["trainer"]')


def step_name_of(function):
    """The default step name of a function: its name; for `hub://[<source>/]<name>[:<tag>]`,
    the hub function's name (as MLRun names the function it imports)."""
    if function.startswith("hub://"):
        return function[len("hub://"):].split(":")[0].split("/")[-1].replace("_", "-")
    return function


def add_step(function, action, bound, default_name):
    # `name=""` is MLRun's own default ("not given"): the step is named after its function.
    name = bound.get("name") or default_name
    if not isinstance(name, str) or "{{" in name:
        refuse("step name `%s` (names are fixed strings, not pipeline placeholders)" % (name,),
               "name steps with fixed text")
    if not name.strip():
        file, line = user_location()
        err = WorkflowError("step name %r is blank" % name,
                            "give the step a name, or leave `name=` out to name it after its "
                            "function", file, line)
        if not FIRST_REFUSAL:
            FIRST_REFUSAL.append(err)
        raise err
    record = {"name": unique_step_name(name), "function": function}
    handler = bound.get("handler")
    if handler:
        if not isinstance(handler, str):
            refuse("a `%s` handler for step `%s` (use the handler's name)"
                   % (type(handler).__name__, record["name"]),
               'name the handler, e.g. `handler="train"`')
        record["handler"] = handler
    for key in ("params", "inputs"):
        value = bound.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            refuse("`%s=` of type `%s` for step `%s` (expected a dict)"
                   % (key, type(value).__name__, record["name"]),
               "pass a dict of names to values")
        if value:
            record[key] = to_json_value(value, "`%s` of step `%s`" % (key, record["name"]))
    outputs = bound.get("outputs")
    if outputs is not None:
        if isinstance(outputs, str) or not all(isinstance(o, str) for o in outputs):
            refuse("`outputs=%r` for step `%s` (expected a list of key names)"
                   % (outputs, record["name"]),
               'list the output keys, e.g. `outputs=["model"]`')
        if outputs:
            record["outputs"] = list(outputs)
    record_hyperparams(record, bound)
    handle = FUNCTION_OBJECTS.get(function)
    if action == "run" and handle is not None and handle._overrides:
        record["overrides"] = handle.overrides()
    if CONDITIONS:
        record["when"] = " and ".join(group._text for group in CONDITIONS)
    record["action"] = action
    STEPS.append(record)
    for group in CONDITIONS:
        group._steps.append(record["name"])
    return StepHandle(record)


class HyperParamOptions:
    """`mlrun.model.HyperParamOptions`: how hyperparameters are expanded and judged."""

    FIELDS = ("param_file", "strategy", "selector", "stop_condition", "parallel_runs",
              "dask_cluster_uri", "max_iterations", "max_errors", "teardown_dask")

    def __init__(self, param_file=None, strategy=None, selector=None, stop_condition=None,
                 parallel_runs=None, dask_cluster_uri=None, max_iterations=None,
                 max_errors=None, teardown_dask=None):
        for field in self.FIELDS:
            setattr(self, field, locals()[field])

    def to_dict(self):
        return {f: getattr(self, f) for f in self.FIELDS if getattr(self, f) is not None}

    def __repr__(self):
        return "HyperParamOptions(%s)" % ", ".join("%s=%r" % kv for kv in self.to_dict().items())


HYPER_HINT = "hyperparameter values must be known when the workflow is loaded"


def record_hyperparams(record, bound):
    """`hyperparams=`, `hyper_param_options=` (an object or a dict) and `selector=` of a run."""
    hyperparams = bound.get("hyperparams")
    options = bound.get("hyper_param_options")
    selector = bound.get("selector")
    where = "`hyperparams` of step `%s`" % record["name"]
    if hyperparams is not None:
        if not isinstance(hyperparams, dict):
            refuse("`hyperparams=` of type `%s` for step `%s` (expected a dict of lists)"
                   % (type(hyperparams).__name__, record["name"]),
               'pass a dict of lists, e.g. `hyperparams={"lr": [0.1, 0.01]}`')
        hyperparams = to_json_value(hyperparams, where)
        if "{{" in json.dumps(hyperparams):
            refuse("a pipeline placeholder in %s" % where, HYPER_HINT)
    if isinstance(options, HyperParamOptions):
        options = options.to_dict()
    elif isinstance(options, dict):
        unknown = sorted(set(options) - set(HyperParamOptions.FIELDS))
        if unknown:
            refuse("`hyper_param_options` key `%s` for step `%s`" % (unknown[0], record["name"]),
                   "use the fields of HyperParamOptions: %s" % ", ".join(HyperParamOptions.FIELDS))
        options = {k: v for k, v in options.items() if v is not None}
    elif options is not None:
        refuse("`hyper_param_options=` of type `%s` for step `%s`"
               % (type(options).__name__, record["name"]),
               "pass HyperParamOptions(...) or a dict")
    options = dict(options or {})
    if selector and not options.get("selector"):
        options["selector"] = selector
    if options:
        options = to_json_value(options, "`hyper_param_options` of step `%s`" % record["name"])
        if "{{" in json.dumps(options):
            refuse("a pipeline placeholder in `hyper_param_options` of step `%s`"
                   % record["name"], HYPER_HINT)
    if not hyperparams:
        if options:
            refuse("`hyper_param_options` without `hyperparams` for step `%s`" % record["name"],
                   "add `hyperparams={...}` (a list of values per parameter)")
        return
    record["hyperparams"] = hyperparams
    if options:
        record["hyper_param_options"] = options
    # MLRun's hyper-parameter steps also output their summary table.
    outputs = record.setdefault("outputs", [])
    if "iteration_results" not in outputs:
        outputs.append("iteration_results")


def run_function(*args, **kwargs):
    bound = bind("run_function", RUN_FUNCTION_ARGS, args, kwargs, RUN_SUPPORTED, RUN_IGNORED)
    if "function" not in bound:
        refuse("`run_function()` without a function", 'name it: `run_function("name", ...)`')
    function = function_name(bound["function"], "run_function")
    return add_step(function, "run", bound, step_name_of(function))


def build_function(*args, **kwargs):
    bound = bind("build_function", BUILD_FUNCTION_ARGS, args, kwargs, {"function"},
                 {"project_object"})
    if "function" not in bound:
        refuse("`build_function()` without a function", 'name it: `build_function("name")`')
    function = function_name(bound["function"], "build_function")
    # MLRun's build step outputs the image it built (`builder.outputs["image"]`).
    return add_step(function, "build", {"outputs": ["image"]}, "build-" + function)


def deploy_function(*args, **kwargs):
    bound = bind("deploy_function", DEPLOY_FUNCTION_ARGS, args, kwargs,
                 {"function", "models", "env", "tag"}, {"project_object", "verbose"})
    if "function" not in bound:
        refuse("`deploy_function()` without a function", 'name it: `deploy_function("name")`')
    function = function_name(bound["function"], "deploy_function")
    # What the deployment would be given is kept as the step's params (no engine of baton
    # deploys; every one refuses the step when the run is submitted).
    params = {key: bound[key] for key in ("models", "env", "tag") if key in bound}
    # MLRun's deploy step outputs the function's endpoint (`deployer.outputs["endpoint"]`).
    return add_step(function, "deploy", {"outputs": ["endpoint"], "params": params},
                    "deploy-" + function)


# ---------------------------------------------------------------------------------------------
# Stand-ins for project functions, the project and `funcs`.
# ---------------------------------------------------------------------------------------------


OVERRIDE_HINT = "values of function modifiers must be known when the workflow is loaded"


class Modifier:
    """What a mount helper (`mount_pvc(...)`, `auto_mount()`, ...) returns, for `fn.apply()`."""

    def __init__(self, helper, args):
        self.record = {"helper": helper}
        for key, value in args.items():
            if value is not None:
                self.record[key] = value

    def __call__(self, *args, **kwargs):
        refuse("calling the `%s` modifier directly" % self.record["helper"],
               "pass it to `fn.apply(...)`")

    def __repr__(self):
        return "<modifier %s>" % self.record["helper"]


def mount_helper(name, *order, **defaults):
    """A stand-in for MLRun's mount helper `name(<order>...)`; `defaults` are keyword-only."""

    def helper(*args, **kwargs):
        names = list(order) + list(defaults)
        if len(args) > len(names):
            refuse("`%s` with %d positional arguments" % (name, len(args)),
               "pass the arguments after the first ones by keyword")
        given = dict(zip(names, args))
        for key, value in kwargs.items():
            if key not in names:
                refuse("`%s(%s=...)`: unknown argument `%s`" % (name, key, key),
               "`%s` takes: %s" % (name, ", ".join(names)))
            given[key] = value
        return Modifier(name, given)

    helper.__name__ = name
    return helper


MOUNT_HELPERS = {
    "mount_pvc": mount_helper("mount_pvc", "pvc_name", "volume_name", "volume_mount_path"),
    "auto_mount": mount_helper("auto_mount", "pvc_name", "volume_mount_path", "volume_name"),
    "mount_v3io": mount_helper("mount_v3io", "name", "remote", "access_key", "user", "secret",
                               "volume_mounts"),
    "mount_secret": mount_helper("mount_secret", "secret_name", "mount_path", "volume_name",
                                 "items"),
    "mount_configmap": mount_helper("mount_configmap", "configmap_name", "mount_path",
                                    "volume_name", "items"),
}


class FunctionHandle:
    """A project function, as `funcs["name"]` and `project.get_function("name")` return it.
    Modifiers called on it (`set_env`, `with_limits`, `apply(mount_pvc(...))`, ...) change the
    steps later run from it: they are recorded as the steps' `overrides`."""

    def __init__(self, name):
        self._name = name
        self._overrides = {}

    def as_step(self, *args, **kwargs):
        bound = bind("as_step", AS_STEP_ARGS, args, kwargs, RUN_SUPPORTED - {"function"},
                     RUN_IGNORED)
        return add_step(self._name, "run", bound, self._name)

    def deploy_step(self, project="", models=None, env=None, tag=None, verbose=None,
                    use_function_from_db=None):
        return deploy_function(self, models=models, env=env, tag=tag)

    def _text(self, value, what):
        value = to_json_value(value, "%s of function `%s`" % (what, self._name))
        if isinstance(value, str) and "{{" in value:
            refuse("a pipeline placeholder in %s of function `%s`" % (what, self._name),
                   OVERRIDE_HINT)
        if isinstance(value, (dict, list)):
            refuse("a `%s` value in %s of function `%s`" % (type(value).__name__, what,
                                                          self._name),
               "use a string or a number")
        return value if isinstance(value, str) else json.dumps(value)

    def _resources(self, section, patch, values):
        given = {k: self._text(v, "`%s`" % section) for k, v in values.items() if v is not None}
        if patch:
            self._overrides.setdefault(section, {}).update(given)
        else:
            self._overrides[section] = given
        if not self._overrides[section]:
            del self._overrides[section]
        return self

    def with_requests(self, mem=None, cpu=None, patch=False):
        return self._resources("requests", patch, {"memory": mem, "cpu": cpu})

    def with_limits(self, mem=None, cpu=None, gpus=None, gpu_type="nvidia.com/gpu", patch=False):
        return self._resources("limits", patch, {"memory": mem, "cpu": cpu, gpu_type: gpus})

    def set_env(self, name, value=None, value_from=None):
        if value_from is not None:
            refuse("`set_env(%r, value_from=...)` on function `%s`" % (name, self._name),
                   "set a plain value; secrets are not passed through workflow steps yet")
        if not isinstance(name, str) or not name:
            refuse("`set_env(%r)` on function `%s` (the name must be a string)"
                   % (name, self._name),
               'name the variable, e.g. `set_env("MODE", "fast")`')
        env = self._overrides.setdefault("env", {})
        env[name] = self._text("" if value is None else value, "`set_env(%r)`" % name)
        return self

    def set_envs(self, env_vars=None, file_path=None):
        if file_path is not None:
            refuse("`set_envs(file_path=...)` on function `%s`" % self._name,
                   "pass the variables as `env_vars={...}`")
        if not isinstance(env_vars, dict) or not env_vars:
            refuse("`set_envs(%r)` on function `%s` (expected a dict of variables)"
                   % (env_vars, self._name),
               'pass `env_vars={"NAME": "value"}`')
        for name, value in env_vars.items():
            self.set_env(name, value)
        return self

    def with_node_selection(self, node_name=None, node_selector=None, affinity=None,
                            tolerations=None):
        for arg, value in [("node_name", node_name), ("affinity", affinity),
                           ("tolerations", tolerations)]:
            if value is not None:
                refuse("`with_node_selection(%s=...)` on function `%s`" % (arg, self._name),
                       "select nodes by labels with `node_selector={...}`")
        if node_selector is not None:
            if not isinstance(node_selector, dict):
                refuse("`with_node_selection(node_selector=%r)` on function `%s` (expected a "
                       "dict of node labels)" % (node_selector, self._name),
               'pass `node_selector={"label": "value"}`')
            self._overrides["node_selector"] = {
                k: self._text(v, "`node_selector`") for k, v in node_selector.items()}
            if not self._overrides["node_selector"]:
                del self._overrides["node_selector"]
        return self

    def apply(self, modifier):
        if not isinstance(modifier, Modifier):
            refuse("`.apply(%r)` on function `%s`" % (modifier, self._name),
                   "baton knows MLRun's mount helpers: %s" % ", ".join(sorted(MOUNT_HELPERS)))
        record = to_json_value(modifier.record, "`apply()` on function `%s`" % self._name)
        if "{{" in json.dumps(record):
            refuse("a pipeline placeholder in `apply(%s(...))` on function `%s`"
                   % (record["helper"], self._name), OVERRIDE_HINT)
        self._overrides.setdefault("mounts", []).append(record)
        return self

    def overrides(self):
        """The modifiers so far, as a step's `overrides` (a copy: later calls do not change
        steps already recorded)."""
        return json.loads(json.dumps(self._overrides))

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        refuse("`.%s` on function `%s`" % (name, self._name),
               "in a workflow baton knows these modifiers: with_requests, with_limits, set_env, "
               "set_envs, with_node_selection, apply(<mount helper>); and as_step, deploy_step")


FUNCTION_OBJECTS = {}
FUNCTIONS_AT_RUN_TIME = ("which functions exist is checked when the workflow runs; name each "
                         'function with `%s["name"]`')


class Functions:
    """`funcs` / `functions`: the project's functions by name."""

    def __init__(self, label):
        self._label = label

    def __getitem__(self, key):
        if not isinstance(key, str) or not key or "{{" in key:
            refuse("`%s[%r]` (function names are fixed, non-empty strings)" % (self._label, key),
               'name the function, e.g. `funcs["trainer"]`')
        # One object per function, as MLRun's pipeline context keeps them: a modifier called
        # through one reference is seen through the others and by `run_function("name")`.
        if key not in FUNCTION_OBJECTS:
            FUNCTION_OBJECTS[key] = FunctionHandle(key)
        return FUNCTION_OBJECTS[key]

    def get(self, key, *default):
        if default:
            refuse("`%s.get(key, default)`" % self._label,
                   "which functions exist is checked when the workflow runs; use %s[key]"
                   % self._label)
        return self[key]

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        refuse("`%s.%s`" % (self._label, name), 'use `%s["name"]`' % self._label)

    def __contains__(self, key):
        refuse("`in %s`" % self._label, FUNCTIONS_AT_RUN_TIME % self._label)

    def __iter__(self):
        refuse("iterating over `%s`" % self._label, FUNCTIONS_AT_RUN_TIME % self._label)

    def __len__(self):
        refuse("`len(%s)`" % self._label, FUNCTIONS_AT_RUN_TIME % self._label)


class ProjectSpec:
    """`project.spec`: its params, known when the workflow is traced."""

    def __init__(self, params):
        self.params = params

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        refuse("`project.spec.%s`" % name, "a workflow reads `project.spec.params`")


# `get_artifact_uri` categories and the store kind each names (MLRun's rule).
ARTIFACT_KINDS = {"artifact": "artifacts", "model": "models", "dataset": "datasets"}


class Project:
    """The current project, as `this_project`, `mlrun.get_current_project()` and
    `mlrun.projects.pipeline_context.project` give it. What it knows at trace time (its name and
    params) becomes constants in the graph."""

    def __init__(self, context):
        self.name = context.get("name") or ""
        self.spec = ProjectSpec(dict(context.get("params") or {}))

    @property
    def metadata(self):
        return types.SimpleNamespace(name=self.name)

    @property
    def params(self):
        return self.spec.params

    def get_param(self, key, default=None):
        return self.spec.params.get(key, default)

    def get_artifact_uri(self, key, category="artifact", tag=None, iter=None):
        kind = ARTIFACT_KINDS.get(category)
        if kind is None:
            refuse("`project.get_artifact_uri(category=%r)`" % (category,),
                   "use one of: %s" % ", ".join(sorted(ARTIFACT_KINDS)))
        uri = "store://%s/%s/%s" % (kind, self.name, key)
        if iter:
            uri += "#%s" % iter
        if tag:
            uri += ":%s" % tag
        return uri

    def run_function(self, *args, **kwargs):
        return run_function(*args, **kwargs)

    def build_function(self, *args, **kwargs):
        return build_function(*args, **kwargs)

    def deploy_function(self, *args, **kwargs):
        return deploy_function(*args, **kwargs)

    def get_function(self, key, *args, **kwargs):
        if args or any(v is not None for v in kwargs.values()):
            refuse("`project.get_function()` with arguments other than the name",
                   'pass only the name: `project.get_function("name")`')
        return FUNCS[key]

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        refuse("`project.%s`" % name,
               "a workflow's project has name, spec.params, get_param, get_artifact_uri, "
               "get_function, run_function, build_function and deploy_function")


PROJECT = Project(PROJECT_CONTEXT)
FUNCS = Functions("funcs")


def get_current_project(*args, **kwargs):
    return PROJECT


# ---------------------------------------------------------------------------------------------
# kfp.dsl stand-ins.
# ---------------------------------------------------------------------------------------------


def pipeline(*args, **kwargs):
    """`@dsl.pipeline` and `@dsl.pipeline(...)`: a no-op."""
    if len(args) == 1 and not kwargs and callable(args[0]):
        return args[0]
    return lambda func: func


class Condition:
    """`with dsl.Condition(a OP b):` guards the steps created inside it."""

    construct = "dsl.Condition"

    def __init__(self, condition, name=None):
        if not isinstance(condition, Comparison):
            refuse("`%s(%r)`: the condition must compare a pipeline placeholder with a value"
                   % (self.construct, condition),
                   'write e.g. `%s(step.outputs["rows"] > 0)`' % self.construct)
        self._text = condition.render()
        # The steps recorded inside this group and its inner groups, for `.after(group)`.
        self._steps = []
        self._open = False
        self._entered = False

    def __enter__(self):
        if self._entered:
            refuse("entering the same `%s` group twice" % self.construct,
                   "open a new `with %s(...)` block" % self.construct)
        self._open = self._entered = True
        CONDITIONS.append(self)
        return self

    def __exit__(self, *exc):
        CONDITIONS.pop()
        self._open = False
        return False

    def __repr__(self):
        return "<%s %s>" % (self.construct, self._text)


class If(Condition):
    construct = "dsl.If"


# ---------------------------------------------------------------------------------------------
# Fake modules.
# ---------------------------------------------------------------------------------------------


class FakeModule(types.ModuleType):
    """A module whose unknown attributes are refused, naming `module.attr` and the line."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        offered = sorted(k for k in vars(self) if not k.startswith("_"))
        refuse("`%s.%s`" % (self.__name__, name),
               "in a workflow, `%s` offers: %s" % (self.__name__, ", ".join(offered)))


def fake_module(name, **attrs):
    module = FakeModule(name)
    module.__path__ = []
    module.__file__ = "<baton stand-in for %s>" % name
    for key, value in attrs.items():
        setattr(module, key, value)
    sys.modules[name] = module
    return module


class RefuseImports(importlib.abc.MetaPathFinder):
    """Refuses `import mlrun.x` / `import kfp.x` for submodules the stand-ins lack."""

    def find_spec(self, fullname, path=None, target=None):
        root = fullname.split(".")[0]
        if root in ("mlrun", "kfp") and fullname not in sys.modules:
            offered = sorted(k for k, v in sys.modules.items() if isinstance(v, FakeModule))
            refuse("`import %s`" % fullname,
                   "a workflow can import: %s" % ", ".join(offered))
        return None


def install_fakes():
    operations = dict(run_function=run_function, build_function=build_function,
                      deploy_function=deploy_function, get_current_project=get_current_project)
    context = types.SimpleNamespace(project=PROJECT)
    projects = fake_module("mlrun.projects", pipeline_context=context, **operations)
    model = fake_module("mlrun.model", HyperParamOptions=HyperParamOptions)
    mounts = fake_module("mlrun.runtimes.mounts", **MOUNT_HELPERS)
    runtimes = fake_module("mlrun.runtimes", mounts=mounts)
    mlrun = fake_module("mlrun", projects=projects, model=model, runtimes=runtimes,
                        auto_mount=MOUNT_HELPERS["auto_mount"],
                        mount_v3io=MOUNT_HELPERS["mount_v3io"], **operations)
    dsl = fake_module("kfp.dsl", pipeline=pipeline, Condition=Condition, If=If)
    fake_module("kfp", dsl=dsl)
    sys.meta_path.insert(0, RefuseImports())
    return mlrun


# ---------------------------------------------------------------------------------------------
# Driver.
# ---------------------------------------------------------------------------------------------


def user_frame_of(tb):
    """The innermost traceback entry in user code, as (file, line)."""
    found = (None, None)
    for entry in traceback.extract_tb(tb):
        if entry.filename != SHIM_FILE and not entry.filename.startswith("<frozen"):
            found = (entry.filename, entry.lineno)
    return found


def describe(exc):
    text = str(exc)
    return "%s: %s" % (type(exc).__name__, text) if text else type(exc).__name__


def load_handler():
    spec = importlib.util.spec_from_file_location("workflow", WORKFLOW_FILE)
    if spec is None or spec.loader is None:
        raise WorkflowError("cannot import workflow `%s`" % WORKFLOW_FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["workflow"] = module
    try:
        spec.loader.exec_module(module)
    except WorkflowError:
        raise
    except SyntaxError as exc:
        raise WorkflowError("syntax error: %s" % (exc.msg,),
                            "fix the Python syntax", exc.filename, exc.lineno)
    except BaseException as exc:
        file, line = user_frame_of(exc.__traceback__)
        raise WorkflowError("importing the workflow failed: %s" % describe(exc), None, file, line)
    # MLRun injects these after the import, so they are usable only inside functions.
    module.funcs = FUNCS
    module.functions = Functions("functions")
    module.this_project = PROJECT
    if hasattr(module, "init_functions"):
        call_user(module.init_functions, "init_functions", (module.functions, PROJECT, None))
    handler = EXPLICIT_HANDLER
    if not handler and hasattr(module, "kfpipeline"):
        handler = "kfpipeline"
    if not handler and hasattr(module, "pipeline"):
        handler = "pipeline"
    if not handler:
        raise WorkflowError(
            "'workflow_handler' is not defined. Either provide it as set_workflow argument, or "
            "include a function named 'kfpipeline' or 'pipeline' in your workflow .py file")
    if not hasattr(module, handler):
        raise WorkflowError(
            "'workflow_handler' `%s` is not defined in the workflow .py file" % handler,
            "define a function named `%s` or change the workflow's handler" % handler)
    function = getattr(module, handler)
    if not callable(function):
        raise WorkflowError("workflow handler `%s` is a `%s`, not a function"
                            % (handler, type(function).__name__))
    return handler, function


def call_user(function, label, args=(), kwargs=None):
    try:
        return function(*args, **(kwargs or {}))
    except WorkflowError:
        raise
    except BaseException as exc:
        file, line = user_frame_of(exc.__traceback__)
        raise WorkflowError("workflow `%s` raised %s" % (label, describe(exc)), None, file, line)


def annotation_name(annotation):
    """A parameter's annotation as a type name (`float`, `Optional[int]`), or None. Classes give
    their name; `from __future__ import annotations` already gives text; `typing` forms give
    their text without the `typing.` prefix."""
    if annotation is inspect.Parameter.empty or annotation is None:
        return None
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, type) and not getattr(annotation, "__args__", None):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


# The type an unannotated parameter takes from its default, as KFP's compiler infers it.
DEFAULT_TYPES = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}


def pipeline_params(handler, function):
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError) as exc:
        raise WorkflowError("cannot read the parameters of handler `%s`: %s" % (handler, exc))
    params, args, kwargs = [], [], {}
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        placeholder = Placeholder("{{args.%s}}" % parameter.name)
        entry = {"name": parameter.name}
        annotation = annotation_name(parameter.annotation)
        if not annotation and parameter.default is not parameter.empty:
            annotation = DEFAULT_TYPES.get(type(parameter.default))
        if annotation:
            entry["type"] = annotation
        if parameter.default is not parameter.empty:
            try:
                entry["default"] = to_json_value(parameter.default,
                                                 "the default of parameter `%s`" % parameter.name)
            except WorkflowError as err:
                err.file, err.line = WORKFLOW_FILE, function.__code__.co_firstlineno
                raise
        params.append(entry)
        if parameter.kind == parameter.POSITIONAL_ONLY:
            args.append(placeholder)
        else:
            kwargs[parameter.name] = placeholder
    return params, args, kwargs


def trace():
    install_fakes()
    sys.path.insert(0, os.path.dirname(WORKFLOW_FILE))
    handler, function = load_handler()
    params, args, kwargs = pipeline_params(handler, function)
    call_user(function, handler, args, kwargs)
    if FIRST_REFUSAL:
        raise FIRST_REFUSAL[0]
    graph = {"name": GRAPH_NAME}
    if params:
        graph["params"] = params
    graph["steps"] = STEPS
    return graph


def main():
    try:
        result = {"graph": trace()}
    except WorkflowError as err:
        # A refusal swallowed by user code wins over what happened after it.
        err = FIRST_REFUSAL[0] if FIRST_REFUSAL else err
        result = {"error": {"message": err.message, "hint": err.hint, "file": err.file,
                            "line": err.line}}
    with open(RESULT_FILE, "w", encoding="utf-8") as out:
        json.dump(result, out)


main()
