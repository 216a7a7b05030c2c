"""baton's handler bootstrap: run one `module:function` handler and report its outcome.

Protocol (version 1), kept small so the transport can change (today a fresh `python -u -c` per
step, later a warm process that forks per step) without touching anything outside the runner:

- in: one JSON request, read from the file named by argv[1] (or from stdin when there is none):
  {"protocol": 1, "code_dir", "code_source" (optional: what messages call the code, such as
  its store:// URI), "module", "function", "params", "inputs", "context": {"uid", "name",
  "project", "artifact_path", "labels"}, "result_path", "keep_bytecode" (optional: the code
  folder is baton's, so the module's compiled code is kept beside it)}
- out: one JSON result written to `result_path` (atomically; never to stdout, which belongs to
  the user's code): {"state": "completed" | "error", "results", "artifacts", "error",
  "failure_kind"}; a failed run's `failure_kind` is "config" when no retry can change it (see
  `ConfigError`), else "handler"
- logs: whatever the handler prints, plus tracebacks, go to this process's stdout and stderr.

Standard library only: the bootstrap runs in whatever interpreter the user's image provides.
`run_request(request) -> result` does the work and never raises, so a forking server can call
it directly.
"""

import sys

# `python -c` puts the working directory (the code folder) first on sys.path. Drop it before
# importing anything, so a payload file named `json.py` cannot replace the bootstrap's own
# modules; it is put back for the handler in `run_request`.
sys.path[:] = [p for p in sys.path if p not in ("", ".")]

import copy
import importlib
import importlib.util
import json
import keyword
import os
import types

# `asyncio`, `inspect`, `logging`, `shutil` and `traceback` are imported where used (through
# `_stdlib`): they cost milliseconds of start-up, and most handlers need none of them.
_BASE_PATH = list(sys.path)


def _stdlib(name):
    """Import a module the bootstrap needs late, without the code folder on sys.path, so a
    payload file of the same name cannot stand in for it."""
    if name in sys.modules:
        return sys.modules[name]
    saved = sys.path[:]
    sys.path[:] = _BASE_PATH
    try:
        return importlib.import_module(name)
    finally:
        sys.path[:] = saved

PROTOCOL = 1


class HandlerError(Exception):
    """A failure whose message is the whole story (no traceback needed in the log)."""


class ConfigError(HandlerError):
    """A handler that cannot be found or called as configured (module or function missing,
    parameters that do not bind): running it again cannot change the outcome, so the result says
    `"failure_kind": "config"` and the dispatcher does not retry it."""


def _warn(message):
    sys.stderr.write("[baton] " + message + "\n")


# ---------------------------------------------------------------------------------------------
# Results


# What baton's JSON holds exactly: 64-bit integers (signed, or unsigned up to 2**64-1) and values
# nested at most this deep (`MAX_VALUE_DEPTH` in `src/runner/params.rs`; run records are read back
# with serde_json, which stops at 128 levels).
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
_MAX_DEPTH = 100


def _text_of(value):
    """`str(value)`, or a description when even that fails (an int past Python's digit limit)."""
    try:
        return str(value)
    except Exception as err:
        return "<{} that cannot be written as text: {}>".format(type(value).__name__, err)


class _TooDeep(Exception):
    """Raised by `_cast_result` at a container nested deeper than `_MAX_DEPTH`."""


def _cast_value(value, lossy=None):
    """Make a value JSON-safe the way MLRun's `_cast_result` does: scalars kept, containers
    recursed, anything else `str()`. What baton's JSON cannot hold exactly becomes a string too,
    so nothing changes silently: non-finite floats, integers outside 64 bits (a double would drop
    digits), and a value nested deeper than `_MAX_DEPTH` (as a whole). Each of these is noted in
    `lossy`."""
    try:
        return _cast_result(value, 0, lossy)
    except _TooDeep:
        if lossy is not None:
            lossy.append("a value nested deeper than {} levels".format(_MAX_DEPTH))
        return _deep_text(value)


def _cast_result(value, depth, lossy):
    """`_cast_value` below `depth` levels of containers; raises `_TooDeep`."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _utf8(value, lossy)
    if isinstance(value, int):
        if _INT_MIN <= value <= _INT_MAX:
            return value
        if lossy is not None:
            lossy.append("an integer outside the 64-bit range")
        return _text_of(value)
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    if isinstance(value, (list, tuple, dict)) and depth >= _MAX_DEPTH:
        raise _TooDeep()
    if isinstance(value, (list, tuple)):
        return [_cast_result(v, depth + 1, lossy) for v in value]
    if isinstance(value, dict):
        return {_utf8(str(k), lossy): _cast_result(v, depth + 1, lossy) for k, v in value.items()}
    return _utf8(_text_of(value), lossy)


def _utf8(text, lossy):
    """`text`, with lone surrogates (which UTF-8 and so JSON cannot hold) written as escapes."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        if lossy is not None:
            lossy.append("a string with a lone surrogate")
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _deep_text(value):
    """The text of a deeply nested value, without recursing as deep as it goes."""
    try:
        return json.dumps(value, default=str)
    except (RecursionError, TypeError, ValueError):
        return _text_of(value)


# ---------------------------------------------------------------------------------------------
# Inputs


class DataItem:
    """An input handed to a handler: `.url`, `.local()` (a local path) and `.get()` (bytes).

    Local paths and `file://` URLs are used in place; `http(s)://` URLs are downloaded on first
    use. Other schemes must be resolved to one of these by the runner before the request."""

    def __init__(self, key, url, scratch_dir):
        self.key = key
        self.url = url
        self._scratch_dir = scratch_dir
        self._local = None

    def __repr__(self):
        return "DataItem(key={!r}, url={!r})".format(self.key, self.url)

    def __str__(self):
        return self.url

    def _scheme(self):
        head, sep, _ = self.url.partition("://")
        return head.lower() if sep else ""

    def local(self):
        """The path of a local file holding the input."""
        if self._local is not None:
            return self._local
        scheme = self._scheme()
        if scheme == "":
            self._local = self.url
        elif scheme == "file":
            parse, request = _stdlib("urllib.parse"), _stdlib("urllib.request")
            self._local = request.url2pathname(parse.urlparse(self.url).path)
        elif scheme in ("http", "https"):
            tempfile, request = _stdlib("tempfile"), _stdlib("urllib.request")
            os.makedirs(self._scratch_dir, exist_ok=True)
            fd, path = tempfile.mkstemp(prefix=self.key + "-", dir=self._scratch_dir)
            with os.fdopen(fd, "wb") as out, request.urlopen(self.url) as response:
                _stdlib("shutil").copyfileobj(response, out)
            self._local = path
        else:
            raise ValueError(
                "Input '{}' has URL '{}' whose scheme '{}' the handler bootstrap cannot read; "
                "the runner must resolve it to a local path or an http(s) URL".format(
                    self.key, self.url, scheme
                )
            )
        return self._local

    def get(self, encoding=None):
        """The input's content, as bytes (or str when `encoding` is given)."""
        with open(self.local(), "rb") as f:
            body = f.read()
        return body.decode(encoding) if encoding else body


# ---------------------------------------------------------------------------------------------
# Context


class Artifact:
    """What `log_artifact` returns: the key and where the payload was written."""

    def __init__(self, key, target_path, format=None):
        self.key = key
        self.target_path = target_path
        self.format = format

    def __repr__(self):
        return "Artifact(key={!r}, target_path={!r})".format(self.key, self.target_path)

    def to_dict(self):
        record = {"key": self.key, "target_path": self.target_path}
        if self.format:
            record["format"] = self.format
        return record


class Context:
    """The run context passed to handlers that take a `context` parameter (MLRun's
    MLClientCtx subset: results, artifacts, params, logger)."""

    def __init__(self, settings, params, inputs, scratch_dir):
        self.uid = settings.get("uid", "")
        self.name = settings.get("name", "")
        self.project = settings.get("project", "")
        self.artifact_path = settings.get("artifact_path", "")
        self.labels = dict(settings.get("labels") or {})
        self._parameters = dict(params)
        self._inputs = inputs
        self._scratch_dir = scratch_dir
        self._results = {}
        self._artifacts = {}
        self._logger = None

    def __repr__(self):
        return "Context(name={!r}, uid={!r})".format(self.name, self.uid)

    @property
    def logger(self):
        """A `logging.Logger` writing to stderr (the run log)."""
        if self._logger is None:
            self._logger = _make_logger()
        return self._logger

    @property
    def parameters(self):
        """A copy of the run's params."""
        return copy.deepcopy(self._parameters)

    @property
    def results(self):
        """A copy of the results logged so far."""
        return copy.deepcopy(self._results)

    def get_param(self, key, default=None):
        """The param `key`, or `default` when it was not given."""
        return self._parameters.get(key, default)

    def get_input(self, key, url=None):
        """The input `key` as a DataItem (or a new one for `url`)."""
        if url is not None:
            return DataItem(key, url, self._scratch_dir)
        if key not in self._inputs:
            raise KeyError("Input '{}' was not given to this run".format(key))
        return self._inputs[key]

    def log_result(self, key, value, commit=False):
        """Record one result, cast like MLRun (scalars kept, containers recursed, else str)."""
        lossy = []
        self._results[str(key)] = _cast_value(value, lossy)
        if lossy:
            _warn(
                "result '{}' holds {}, which JSON cannot carry exactly; it is recorded as "
                "text".format(key, " and ".join(sorted(set(lossy))))
            )

    def log_results(self, results, commit=False):
        """Record every key/value of a dict."""
        if not isinstance(results, dict):
            raise ValueError("Results must be in the form of dict")
        for key, value in results.items():
            self.log_result(key, value)

    def log_artifact(self, item=None, body=None, local_path=None, format=None, **kwargs):
        """Write an artifact under `artifact_path` and record it.

        `item` is the key (or an object with `.key`; `key=` works too). `body` (str, bytes, or
        anything JSON-serialisable) is written to `<artifact_path>/<key>[.<format>]`;
        `local_path` (a file or folder) is copied to `<artifact_path>/<key><suffix of
        local_path>` (or `.<format>` when given). An `artifact_path=` argument overrides the
        run's; MLRun's other arguments (tag, labels, ...) are accepted and ignored."""
        key = kwargs.get("key") or getattr(item, "key", item)
        if not isinstance(key, str) or not key or key in (".", "..") or "/" in key or "\\" in key:
            raise ValueError(
                "Artifact key {!r} must be a non-empty name without path separators".format(key)
            )
        if format and ("/" in format or "\\" in format):
            raise ValueError("Artifact format {!r} must not contain path separators".format(format))
        if body is None and not local_path:
            raise ValueError("log_artifact('{}') needs a body or a local_path".format(key))
        artifact_path = kwargs.get("artifact_path") or self.artifact_path
        if not artifact_path:
            raise ValueError("log_artifact('{}'): this run has no artifact_path".format(key))
        os.makedirs(artifact_path, exist_ok=True)
        suffix = "." + format if format else ""
        if body is not None:
            target = os.path.join(artifact_path, key + suffix)
            if isinstance(body, str):
                body = body.encode("utf-8")
            elif not isinstance(body, (bytes, bytearray)):
                body = json.dumps(_cast_value(body)).encode("utf-8")
            with open(target, "wb") as out:
                out.write(body)
        else:
            source = os.path.abspath(local_path)
            if os.path.isdir(source):
                target = os.path.join(artifact_path, key)
                _stdlib("shutil").copytree(source, target, dirs_exist_ok=True)
            else:
                if not suffix:
                    suffix = os.path.splitext(source)[1]
                target = os.path.join(artifact_path, key + suffix)
                _stdlib("shutil").copyfile(source, target)
        artifact = Artifact(key, os.path.abspath(target), format)
        self._artifacts[key] = artifact
        return artifact

    def _report(self):
        return {
            "results": self._results,
            "artifacts": [a.to_dict() for a in self._artifacts.values()],
        }


def _make_logger():
    logging = _stdlib("logging")
    logger = logging.getLogger("baton.handler")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


# ---------------------------------------------------------------------------------------------
# Module and function lookup


def _payload_modules(code_dir):
    """The importable names at the payload's root: `.py` files and folders holding Python."""
    names = []
    try:
        entries = sorted(os.listdir(code_dir))
    except OSError:
        return names
    for entry in entries:
        path = os.path.join(code_dir, entry)
        if entry.startswith(".") or entry == "__pycache__":
            continue
        if entry.endswith(".py") and os.path.isfile(path):
            names.append(entry[:-3])
        elif os.path.isdir(path):
            try:
                if any(f.endswith(".py") for f in os.listdir(path)):
                    names.append(entry)
            except OSError:
                pass
    return sorted(set(names))


def _module_file(code_dir, module):
    """The file that defines `module` (dots are sub-folders), and whether it is a package."""
    base = os.path.join(code_dir, *module.split("."))
    if os.path.isfile(base + ".py"):
        return base + ".py", False
    init = os.path.join(base, "__init__.py")
    if os.path.isfile(init):
        return init, True
    return None, False


def _importable(module):
    return all(p.isidentifier() and not keyword.iskeyword(p) for p in module.split("."))


def _inside(path, folder):
    try:
        return os.path.commonpath([os.path.realpath(path), os.path.realpath(folder)]) == (
            os.path.realpath(folder)
        )
    except ValueError:
        return False


def _keep_bytecode(path):
    """Compiles `path` into its `__pycache__` unless that is done already, ignoring
    `PYTHONDONTWRITEBYTECODE`: for a module in baton's code cache, whose files never change, so
    that the runs after the first do not compile it again. Best effort: a folder that cannot be
    written is left as it is."""
    try:
        if not os.path.exists(importlib.util.cache_from_source(path)):
            _stdlib("py_compile").compile(path, doraise=True)
    except Exception:
        pass


def _load_module(code_dir, module, code_source=None, keep_bytecode=False):
    path, is_package = _module_file(code_dir, module)
    if path is None:
        available = _payload_modules(code_dir)
        where = (
            "the code of '{}'".format(code_source)
            if code_source
            else "the code folder '{}'".format(code_dir)
        )
        raise ConfigError(
            "Module '{}' not found in {}; it contains: {}".format(
                module, where, ", ".join(available) if available else "no Python modules"
            )
        )
    if keep_bytecode:
        _keep_bytecode(path)
    top = module.split(".")[0]
    loaded = sys.modules.get(top)
    loaded_from = getattr(loaded, "__file__", None)
    shadowed = loaded is not None and not (loaded_from and _inside(loaded_from, code_dir))
    try:
        if "." in module and _importable(module) and not shadowed:
            return importlib.import_module(module)
        # A module at the payload's root is loaded from the file found above, as `python <file>`
        # would: the same module as an import through sys.path, without searching for it again
        # (a third of a forked step's start). So is a name that is not a Python identifier (an
        # inline body logged as `my-code`) and one the bootstrap itself imported (`json`,
        # `logging`, ...).
        locations = [os.path.dirname(path)] if is_package else None
        spec = importlib.util.spec_from_file_location(
            module, path, submodule_search_locations=locations
        )
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[module] = loaded
        spec.loader.exec_module(loaded)
        return loaded
    except Exception as err:
        _print_traceback()
        raise HandlerError(
            "Failed to import module '{}' ({}): {}: {}".format(module, path, type(err).__name__, err)
        )


def _public_callables(mod):
    names = []
    for name, value in vars(mod).items():
        if name.startswith("_") or not callable(value):
            continue
        if getattr(value, "__module__", mod.__name__) != mod.__name__:
            continue  # imported helpers (`from pathlib import Path`) are not handlers
        names.append(name)
    return sorted(names)


def _find_function(mod, module, function):
    fn = getattr(mod, function, None)
    if fn is None or not callable(fn):
        public = _public_callables(mod)
        raise ConfigError(
            "Function '{}' not found in module '{}' ({}); its public callables: {}".format(
                function,
                module,
                getattr(mod, "__file__", "?"),
                ", ".join(public) if public else "none",
            )
        )
    return fn


# ---------------------------------------------------------------------------------------------
# Binding and calling


# Parameter kinds, numbered as `inspect.Parameter` numbers them.
_POSITIONAL_ONLY, _POSITIONAL_OR_KEYWORD, _VAR_POSITIONAL, _KEYWORD_ONLY, _VAR_KEYWORD = range(5)
_NO_DEFAULT = object()
_CO_VARARGS, _CO_VARKEYWORDS = 0x04, 0x08


def _parameters(fn):
    """`fn`'s parameters as `inspect.signature` gives them: (name, kind, default or _NO_DEFAULT,
    annotated). A plain function is read from its code object, without importing `inspect` (a
    large module every forked step would otherwise share pages of and touch); anything else
    (a decorated function with `__wrapped__`, a class, a `functools.partial`) goes through
    `inspect.signature`, which may raise TypeError or ValueError."""
    if type(fn) is not types.FunctionType or hasattr(fn, "__wrapped__") or hasattr(
        fn, "__signature__"
    ):
        inspect = _stdlib("inspect")
        return [
            (
                p.name,
                int(p.kind),
                _NO_DEFAULT if p.default is p.empty else p.default,
                p.annotation is not p.empty,
            )
            for p in inspect.signature(fn).parameters.values()
        ]
    code = fn.__code__
    names, positional, keyword_only = code.co_varnames, code.co_argcount, code.co_kwonlyargcount
    defaults, keyword_defaults = fn.__defaults__ or (), fn.__kwdefaults__ or {}
    annotations = fn.__annotations__
    first_default = positional - len(defaults)
    found = []
    for i in range(positional):
        kind = _POSITIONAL_ONLY if i < code.co_posonlyargcount else _POSITIONAL_OR_KEYWORD
        default = defaults[i - first_default] if i >= first_default else _NO_DEFAULT
        found.append((names[i], kind, default, names[i] in annotations))
    rest = positional + keyword_only
    if code.co_flags & _CO_VARARGS:
        found.append((names[rest], _VAR_POSITIONAL, _NO_DEFAULT, names[rest] in annotations))
        rest += 1
    for name in names[positional : positional + keyword_only]:
        found.append(
            (name, _KEYWORD_ONLY, keyword_defaults.get(name, _NO_DEFAULT), name in annotations)
        )
    if code.co_flags & _CO_VARKEYWORDS:
        found.append((names[rest], _VAR_KEYWORD, _NO_DEFAULT, names[rest] in annotations))
    return found


def _bind(fn, function, context, params, inputs):
    """Bind by name like MLRun's `get_func_arg`: `context` gets the context, a param or input of
    the same name fills a parameter, `**kwargs` takes what is left. Params the signature does not
    accept are ignored (MLRun ignores them too); a required parameter nobody fills is an error."""
    try:
        parameters = _parameters(fn)
    except (TypeError, ValueError):
        return [], dict(params)
    args, kwargs, used = [], {}, set()
    var_kwargs = False
    positional_gap = False
    for name, kind, default, annotated in parameters:
        if kind == _VAR_POSITIONAL:
            continue
        if kind == _VAR_KEYWORD:
            var_kwargs = True
            continue
        if name == "context":
            value = context
        elif name in params:
            value = copy.deepcopy(params[name])
            used.add(name)
        elif name in inputs:
            item = inputs[name]
            # MLRun: an unannotated parameter with a str default wants the local path.
            if not annotated and isinstance(default, str):
                value = item.local()
            else:
                value = item
            used.add(name)
        elif default is not _NO_DEFAULT:
            if kind == _POSITIONAL_ONLY:
                positional_gap = True
            continue
        else:
            given = sorted(set(params) | set(inputs))
            raise ConfigError(
                "Handler '{}' needs a value for parameter '{}': pass it as a param or an input "
                "(given: {})".format(function, name, ", ".join(given) if given else "none")
            )
        if kind == _POSITIONAL_ONLY:
            if positional_gap:
                raise ConfigError(
                    "Handler '{}': positional-only parameter '{}' follows one left to its "
                    "default; give both".format(function, name)
                )
            args.append(value)
        else:
            kwargs[name] = value
    rest = [k for k in list(params) + list(inputs) if k not in used and k not in kwargs]
    if var_kwargs:
        for key in rest:
            if key in params:
                kwargs[key] = copy.deepcopy(params[key])
            else:
                kwargs[key] = inputs[key]
    elif rest:
        _warn(
            "handler '{}' takes no parameter named {}; ignored".format(
                function, ", ".join("'{}'".format(k) for k in rest)
            )
        )
    return args, kwargs


def _call(fn, function, args, kwargs):
    value = fn(*args, **kwargs)
    if isinstance(value, types.CoroutineType):
        value = _stdlib("asyncio").run(value)
    if isinstance(value, (types.GeneratorType, types.AsyncGeneratorType)):
        raise ConfigError(
            "Handler '{}' returned a generator, which a job cannot run: return the result "
            "instead of yielding it".format(function)
        )
    return value


def _print_traceback():
    _stdlib("traceback").print_exc()


def _truthy(value):
    try:
        return bool(value)
    except Exception:
        return True  # e.g. an array whose truth is ambiguous: it is a value worth keeping


def _completed(request, report):
    """The result of a completed run; a hyper-parameter iteration's `stop_condition` is judged
    here, as MLRun does: `eval(condition, {}, results)`."""
    result = dict(state="completed", error=None, **report)
    condition = request.get("stop_condition")
    if condition:
        try:
            result["stop"] = bool(eval(condition, {}, dict(report["results"])))
        except BaseException as err:
            result["stop_error"] = "{}: {}".format(type(err).__name__, err)
    return result


def run_request(request):
    """Run the handler a request names and return the result dict. Never raises."""
    context = None
    failure_kind = "handler"
    try:
        if request.get("protocol") != PROTOCOL:
            raise ConfigError(
                "Request protocol {!r} is not {} (runner and bootstrap disagree)".format(
                    request.get("protocol"), PROTOCOL
                )
            )
        # A workflow step's `set_env`/`set_envs`, visible to the module when it is imported.
        os.environ.update(request.get("env") or {})
        code_dir = os.path.abspath(request["code_dir"])
        module, function = request["module"], request["function"]
        params = request.get("params") or {}
        settings = request.get("context") or {}
        scratch = os.path.join(os.path.dirname(request["result_path"]), "inputs")
        inputs = {k: DataItem(k, url, scratch) for k, url in (request.get("inputs") or {}).items()}
        context = Context(settings, params, inputs, scratch)

        os.chdir(code_dir)
        if code_dir in sys.path:
            sys.path.remove(code_dir)
        sys.path.insert(0, code_dir)

        mod = _load_module(
            code_dir, module, request.get("code_source"), request.get("keep_bytecode", False)
        )
        fn = _find_function(mod, module, function)
        args, kwargs = _bind(fn, function, context, params, inputs)
        value = _call(fn, function, args, kwargs)
        if _truthy(value):
            context.log_result("return", value)
        return _completed(request, context._report())
    except ConfigError as err:
        message, failure_kind = str(err), "config"
    except HandlerError as err:
        message = str(err)
    except SystemExit as err:
        if err.code in (None, 0):
            report = context._report() if context else {"results": {}, "artifacts": []}
            return _completed(request, report)
        _print_traceback()
        message = "Handler called sys.exit({!r})".format(err.code)
    except BaseException as err:
        _print_traceback()
        message = "{}: {}".format(type(err).__name__, err)
    _warn("error: " + message)
    report = context._report() if context else {"results": {}, "artifacts": []}
    return dict(state="error", error=message, failure_kind=failure_kind, **report)


def _result_text(result):
    """The result as the runner reads it: JSON, or an error saying why it is not."""
    try:
        return json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as err:
        return json.dumps(
            {"state": "error", "results": {}, "artifacts": [], "error": "Result is not JSON: %s" % err}
        )


def _write_result(path, result):
    text = _result_text(result)
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(temporary, path)


def _die_with_runner(fd=None):
    """Kills this run's whole process group (the handler and whatever it started) as soon as the
    runner that started it is gone, even by SIGKILL: the runner holds the write end of the pipe
    whose read end is `fd` (else the descriptor `BATON_WATCH_FD` names), and the kernel closes it
    when the runner dies.

    The kernel itself does the killing: the read end is put in async mode (`O_ASYNC`) with this
    process group as its owner, so the writer's close sends SIGIO, whose default action ends a
    process, to every process of the group. That costs two system calls and no thread. A group
    member that handles or ignores SIGIO survives it; where async mode cannot be set, a thread
    waits for the close and kills the group with SIGKILL instead."""
    if fd is None:
        fd = os.environ.pop("BATON_WATCH_FD", None)
        if fd is None:
            return
        fd = int(fd)
        os.set_inheritable(fd, False)
    try:
        fcntl = _stdlib("fcntl")
        fcntl.fcntl(fd, fcntl.F_SETOWN, -os.getpgrp())
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_ASYNC)
        return
    except (ImportError, OSError):
        pass
    signal = _stdlib("signal")

    def watch():
        while True:
            try:
                if not os.read(fd, 1):
                    break
            except InterruptedError:
                continue
            except OSError:
                return
        os.killpg(os.getpgrp(), signal.SIGKILL)

    _stdlib("threading").Thread(target=watch, name="baton-runner-watch", daemon=True).start()


def main():
    _die_with_runner()
    if len(sys.argv) > 1:
        with open(sys.argv[1], encoding="utf-8") as f:
            request = json.load(f)
    else:
        request = json.load(sys.stdin)
    result = run_request(request)
    sys.stdout.flush()
    sys.stderr.flush()
    _write_result(request["result_path"], result)
    return 0 if result["state"] == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
