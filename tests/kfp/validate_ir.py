#!/usr/bin/env python3
"""Checks KFP v2 pipeline specs (IR) the way the KFP backend will, before a cluster sees them.

    python validate_ir.py FILE... [--sdk] [-q]

Exit 0 when every file is valid (warnings allowed), 1 when one is invalid (one
`ERROR: <path>: <reason>` line per problem, then `INVALID: <file>`), 2 when one cannot be read.

Checks (see docs/kfp.md §2.2 in the research notes):
1. strict protobuf parse of the PipelineSpec, and of `deploymentSpec` as a
   PipelineDeploymentConfig (a Struct inside PipelineSpec, so otherwise unchecked), and of a
   second PlatformSpec document if present (json_format.ParseDict, unknown fields are errors);
2. the API server's rules: schemaVersion exactly 2.1.0, a pipeline name matching the (anchored)
   name regex, a root;
3. the graph rules the backend only applies at run creation: componentRef and executorLabel
   resolve; dependentTasks are sibling tasks; no cycles (dependentTasks and data edges; the path
   is reported); every taskOutputParameter names a sibling the consumer depends on whose
   component declares that output; componentInputParameter names an input of the enclosing
   component; required callee inputs are supplied; a condition reads only the task's own inputs;
   DAG outputs map to subtask outputs; defaults and constants match their parameterType;
4. executors: a non-empty image; every `{{$.inputs...}}`/`{{$.outputs...}}` placeholder names a
   declared input/output; every output parameter's `output_file` placeholder (or `{{$}}`) is
   passed, since the launcher fails a task whose output file is missing.

Importable: `validate_dicts(spec, platform=None) -> Report`.
With --sdk each file is also loaded with `kfp.components.load_component_from_text` and used as a
task of a wrapper pipeline compiled by the SDK (which type-checks the pipeline's inputs).
"""

import json
import re
import sys
import tempfile
from dataclasses import dataclass, field

import yaml
from google.protobuf import json_format

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
TYPES = {"STRING", "NUMBER_INTEGER", "NUMBER_DOUBLE", "BOOLEAN", "LIST", "STRUCT",
         "TASK_FINAL_STATUS", "TASK_CONFIG"}
IN_PARAM = re.compile(r"\{\{\$\.inputs\.parameters\[['\"]([^'\"]+)['\"]\]\}\}")
IN_ART = re.compile(r"\{\{\$\.inputs\.artifacts\[['\"]([^'\"]+)['\"]\]\.(?:path|uri|metadata)\}\}")
OUT_PARAM = re.compile(r"\{\{\$\.outputs\.parameters\[['\"]([^'\"]+)['\"]\]\.output_file\}\}")
OUT_ART = re.compile(r"\{\{\$\.outputs\.artifacts\[['\"]([^'\"]+)['\"]\]\.(?:path|uri|metadata)\}\}")
ANY_PLACEHOLDER = re.compile(r"\{\{\$[^}]*\}\}")
KNOWN = re.compile(
    r"^\{\{\$(\.(pipeline_job_uuid|pipeline_job_name|pipeline_job_resource_name|"
    r"pipeline_task_name|pipeline_task_uuid|pipeline_root|workspace_path|outputs\.output_file))?\}\}$"
)
COND_REF = re.compile(r"inputs\.parameter_values\[['\"]([^'\"]+)['\"]\]")


@dataclass
class Report:
    errors: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    def error(self, path, reason):
        self.errors.append(f"{path}: {reason}")

    def warn(self, path, reason):
        self.warnings.append(f"{path}: {reason}")


def _type_ok(ptype, value):
    if ptype == "STRING":
        return isinstance(value, str)
    if ptype == "NUMBER_INTEGER":
        return (isinstance(value, (int, float)) and not isinstance(value, bool)
                and float(value).is_integer())
    if ptype == "NUMBER_DOUBLE":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if ptype == "BOOLEAN":
        return isinstance(value, bool)
    if ptype == "LIST":
        return isinstance(value, list)
    if ptype == "STRUCT":
        return isinstance(value, dict)
    return True


def _params(spec, side):
    return ((spec or {}).get(side) or {}).get("parameters") or {}


def _artifacts(spec, side):
    return ((spec or {}).get(side) or {}).get("artifacts") or {}


def _proto_checks(spec, platform, report):
    from kfp.pipeline_spec import pipeline_spec_pb2

    try:
        json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False)
    except json_format.ParseError as e:
        report.error("PipelineSpec", f"not a valid PipelineSpec: {e}")
    deployment = spec.get("deploymentSpec")
    if isinstance(deployment, dict):
        try:
            json_format.ParseDict(deployment, pipeline_spec_pb2.PipelineDeploymentConfig(),
                                  ignore_unknown_fields=False)
        except json_format.ParseError as e:
            report.error("deploymentSpec", f"not a valid PipelineDeploymentConfig: {e}")
    if platform is not None:
        try:
            json_format.ParseDict(platform, pipeline_spec_pb2.PlatformSpec(),
                                  ignore_unknown_fields=False)
        except json_format.ParseError as e:
            report.error("platformSpec", f"not a valid PlatformSpec: {e}")


def _check_definitions(path, comp, report):
    for side in ("inputDefinitions", "outputDefinitions"):
        for name, definition in _params(comp, side).items():
            ptype = (definition or {}).get("parameterType")
            if ptype not in TYPES:
                report.error(f"{path}.{side}.parameters.{name}", f"unknown parameterType {ptype!r}")
                continue
            if side == "inputDefinitions" and "defaultValue" in definition:
                if not _type_ok(ptype, definition["defaultValue"]):
                    report.error(f"{path}.{side}.parameters.{name}",
                                 f"defaultValue {definition['defaultValue']!r} is not a {ptype}")


def _cycle(tasks, edges):
    """A dependency cycle as a list of task names, or None."""
    state = {}
    stack = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for dep in sorted(edges.get(node, ())):
            if dep not in tasks:
                continue
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(tasks):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def _check_dag(path, comp, components, report):
    dag = comp.get("dag") or {}
    tasks = dag.get("tasks") or {}
    if not tasks:
        report.error(f"{path}.dag", "a DAG needs at least one task")
    enclosing_inputs = _params(comp, "inputDefinitions")
    enclosing_artifacts = _artifacts(comp, "inputDefinitions")
    edges = {}
    for key, task in tasks.items():
        tpath = f"{path}.dag.tasks.{key}"
        task = task or {}
        ref = (task.get("componentRef") or {}).get("name")
        callee = components.get(ref)
        if callee is None:
            report.error(tpath, f"componentRef {ref!r} is not a component")
        deps = list(task.get("dependentTasks") or [])
        for dep in deps:
            if dep not in tasks:
                report.error(tpath, f"dependentTasks names {dep!r}, which is not a sibling task")
            if dep == key:
                report.error(tpath, "depends on itself")
        edges[key] = set(deps)
        given = (task.get("inputs") or {}).get("parameters") or {}
        given_art = (task.get("inputs") or {}).get("artifacts") or {}
        callee_inputs = _params(callee, "inputDefinitions")
        for name, value in given.items():
            ipath = f"{tpath}.inputs.parameters.{name}"
            value = value or {}
            if callee is not None and name not in callee_inputs:
                report.warn(ipath, f"not an input of {ref}")
            if "taskOutputParameter" in value:
                top = value["taskOutputParameter"] or {}
                producer, out = top.get("producerTask"), top.get("outputParameterKey")
                edges[key].add(producer)
                if producer not in tasks:
                    report.error(ipath, f"producerTask {producer!r} is not a sibling task")
                    continue
                if producer not in deps:
                    report.error(ipath, f"reads {producer!r}, which is not in dependentTasks")
                pcomp = components.get(((tasks[producer] or {}).get("componentRef") or {}).get("name"))
                if pcomp is not None and out not in _params(pcomp, "outputDefinitions"):
                    report.error(ipath, f"{producer!r} does not declare output {out!r}")
            elif "componentInputParameter" in value:
                src = value["componentInputParameter"]
                if src not in enclosing_inputs:
                    report.error(ipath, f"componentInputParameter {src!r} is not an input of {path}")
            elif "runtimeValue" in value:
                if "constant" not in (value["runtimeValue"] or {}):
                    report.error(ipath, "runtimeValue without a constant")
                elif name in callee_inputs:
                    ptype = callee_inputs[name].get("parameterType")
                    if not _type_ok(ptype, value["runtimeValue"]["constant"]):
                        report.error(ipath, f"constant {value['runtimeValue']['constant']!r} is not a {ptype}")
            elif "taskFinalStatus" in value:
                producer = (value["taskFinalStatus"] or {}).get("producerTask")
                if producer not in tasks:
                    report.error(ipath, f"taskFinalStatus names {producer!r}, not a sibling task")
            else:
                report.error(ipath, "no value source")
        for name, value in given_art.items():
            ipath = f"{tpath}.inputs.artifacts.{name}"
            value = value or {}
            if "taskOutputArtifact" in value:
                producer = (value["taskOutputArtifact"] or {}).get("producerTask")
                out = (value["taskOutputArtifact"] or {}).get("outputArtifactKey")
                edges[key].add(producer)
                if producer not in tasks:
                    report.error(ipath, f"producerTask {producer!r} is not a sibling task")
                    continue
                pcomp = components.get(((tasks[producer] or {}).get("componentRef") or {}).get("name"))
                if pcomp is not None and out not in _artifacts(pcomp, "outputDefinitions"):
                    report.error(ipath, f"{producer!r} does not declare output artifact {out!r}")
            elif "componentInputArtifact" in value:
                if value["componentInputArtifact"] not in enclosing_artifacts:
                    report.error(ipath, f"componentInputArtifact {value['componentInputArtifact']!r} is not an input of {path}")
        if callee is not None:
            for name, definition in callee_inputs.items():
                definition = definition or {}
                if name not in given and not definition.get("isOptional") and "defaultValue" not in definition:
                    report.error(tpath, f"required input {name!r} of {ref} is not supplied")
        condition = (task.get("triggerPolicy") or {}).get("condition")
        if condition:
            for name in COND_REF.findall(condition):
                if name not in given:
                    report.error(f"{tpath}.triggerPolicy", f"condition reads {name!r}, which is not an input of the task")
            if condition.count("(") != condition.count(")"):
                report.error(f"{tpath}.triggerPolicy", "unbalanced parentheses in the condition")
        if task.get("artifactIterator"):
            report.error(tpath, "artifactIterator is not supported by the KFP backend")
    cycle = _cycle(set(tasks), edges)
    if cycle:
        report.error(f"{path}.dag", "dependency cycle: " + " -> ".join(cycle))
    outputs = dag.get("outputs") or {}
    declared = _params(comp, "outputDefinitions")
    for name, value in (outputs.get("parameters") or {}).items():
        opath = f"{path}.dag.outputs.parameters.{name}"
        if name not in declared:
            report.error(opath, "not in the component's outputDefinitions")
        src = (value or {}).get("valueFromParameter")
        if src:
            sub = src.get("producerSubtask")
            if sub not in tasks:
                report.error(opath, f"producerSubtask {sub!r} is not a task of this DAG")
            else:
                scomp = components.get(((tasks[sub] or {}).get("componentRef") or {}).get("name"))
                if scomp is not None and src.get("outputParameterKey") not in _params(scomp, "outputDefinitions"):
                    report.error(opath, f"{sub!r} does not declare output {src.get('outputParameterKey')!r}")
    for name in declared:
        if "dag" in comp and name not in (outputs.get("parameters") or {}):
            report.error(f"{path}.outputDefinitions.parameters.{name}", "not produced by the DAG's outputs")


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)


def _check_executor(label, executor, users, components, report):
    epath = f"deploymentSpec.executors.{label}"
    container = (executor or {}).get("container")
    if container is None:
        if (executor or {}).get("resolver") or (executor or {}).get("customJob"):
            report.error(epath, "resolver and customJob executors are not supported by the KFP backend")
        return
    image = container.get("image") or ""
    if not image or any(c.isspace() for c in image):
        report.error(f"{epath}.container.image", f"invalid image {image!r}")
    texts = list(_strings(container.get("command") or [])) + list(_strings(container.get("args") or []))
    texts += [e.get("value", "") for e in container.get("env") or [] if isinstance(e, dict)]
    whole = any("{{$}}" in t for t in texts)
    for comp_name in users:
        comp = components[comp_name]
        inputs, outputs = _params(comp, "inputDefinitions"), _params(comp, "outputDefinitions")
        in_art, out_art = _artifacts(comp, "inputDefinitions"), _artifacts(comp, "outputDefinitions")
        passed = set()
        for text in texts:
            for name in IN_PARAM.findall(text):
                if name not in inputs:
                    report.error(epath, f"placeholder reads input {name!r}, which {comp_name} does not declare")
            for name in IN_ART.findall(text):
                if name not in in_art:
                    report.error(epath, f"placeholder reads input artifact {name!r}, which {comp_name} does not declare")
            for name in OUT_PARAM.findall(text):
                passed.add(name)
                if name not in outputs:
                    report.error(epath, f"placeholder writes output {name!r}, which {comp_name} does not declare")
            for name in OUT_ART.findall(text):
                if name not in out_art:
                    report.error(epath, f"placeholder writes output artifact {name!r}, which {comp_name} does not declare")
            for ph in ANY_PLACEHOLDER.findall(text):
                if not (IN_PARAM.fullmatch(ph) or IN_ART.fullmatch(ph) or OUT_PARAM.fullmatch(ph)
                        or OUT_ART.fullmatch(ph) or KNOWN.match(ph)):
                    report.warn(epath, f"unknown placeholder {ph}")
        if not whole:
            for name in outputs:
                if name not in passed:
                    report.error(epath, f"output parameter {name!r} of {comp_name} is never passed "
                                        f"(no output_file placeholder): the task would fail")


def validate_dicts(spec, platform=None):
    report = Report()
    if not isinstance(spec, dict):
        report.error("document", "not a mapping")
        return report
    if "pipelineSpec" in spec and "root" not in spec:
        report.error("document", "a v1 / wrapped pipeline, not a PipelineSpec")
        return report
    _proto_checks(spec, platform, report)
    if spec.get("schemaVersion") != "2.1.0":
        report.error("schemaVersion", f"{spec.get('schemaVersion')!r}: the server accepts only 2.1.0")
    name = (spec.get("pipelineInfo") or {}).get("name") or ""
    if not NAME_RE.match(name):
        report.error("pipelineInfo.name", f"{name!r} does not match {NAME_RE.pattern}")
    root = spec.get("root")
    if not isinstance(root, dict):
        report.error("root", "missing")
        return report
    components = spec.get("components") or {}
    if not isinstance(components, dict):
        report.error("components", "not a mapping")
        return report
    executors = ((spec.get("deploymentSpec") or {}).get("executors")) or {}
    users = {}
    for cname, comp in [("root", root)] + sorted(components.items()):
        path = "root" if cname == "root" else f"components.{cname}"
        comp = comp or {}
        _check_definitions(path, comp, report)
        if "dag" in comp:
            _check_dag(path, comp, components, report)
        elif "executorLabel" in comp:
            label = comp["executorLabel"]
            if label not in executors:
                report.error(path, f"executorLabel {label!r} is not an executor of deploymentSpec")
            else:
                users.setdefault(label, []).append(cname)
        else:
            report.error(path, "neither a dag nor an executorLabel")
    for label, executor in sorted(executors.items()):
        if label not in users:
            report.warn(f"deploymentSpec.executors.{label}", "unused executor")
        _check_executor(label, executor, users.get(label, []), components, report)
    return report


def _dummy(ptype):
    return {"STRING": "x", "NUMBER_INTEGER": 1, "NUMBER_DOUBLE": 1.0, "BOOLEAN": True,
            "LIST": [], "STRUCT": {}}.get(ptype, "x")


def sdk_check(text, spec):
    """Loads the spec with the KFP SDK and compiles it as a task of a wrapper pipeline."""
    from kfp import compiler, dsl
    from kfp.components import load_component_from_text

    component = load_component_from_text(text)
    required = {n: _dummy(d.get("parameterType"))
                for n, d in _params(spec.get("root"), "inputDefinitions").items()
                if not d.get("isOptional") and "defaultValue" not in d}

    @dsl.pipeline(name="baton-sdk-check")
    def wrapper():
        task = component(**required)
        task.set_caching_options(False)

    with tempfile.NamedTemporaryFile(suffix=".yaml") as out:
        compiler.Compiler().compile(wrapper, out.name)


def load(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    if not docs:
        raise ValueError("empty document")
    spec = docs[0]
    platform = None
    if isinstance(spec, dict) and "pipeline_spec" in spec and "root" not in spec:
        platform = spec.get("platform_spec")
        spec = spec["pipeline_spec"]
    elif len(docs) > 1:
        platform = docs[1]
    return text, spec, platform


def main(argv):
    sdk = "--sdk" in argv
    quiet = "-q" in argv
    files = [a for a in argv if not a.startswith("-")]
    if not files:
        print(__doc__, file=sys.stderr)
        return 2
    status = 0
    for path in files:
        try:
            text, spec, platform = load(path)
        except (OSError, ValueError, yaml.YAMLError) as e:
            print(f"UNREADABLE: {path}: {e}")
            status = max(status, 2)
            continue
        report = validate_dicts(spec, platform)
        if sdk and not report.errors:
            try:
                sdk_check(text, spec)
            except Exception as e:  # the SDK raises many kinds
                report.error("sdk", f"{type(e).__name__}: {e}")
        for line in report.errors:
            print(f"ERROR: {line}")
        if not quiet:
            for line in report.warnings:
                print(f"WARNING: {line}")
        if report.errors:
            print(f"INVALID: {path}")
            status = max(status, 1)
        elif not quiet:
            print(f"OK: {path}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
