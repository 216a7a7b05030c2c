#!/usr/bin/env python3
"""Mutation test of validate_ir.py: breaks valid specs in known ways and checks each is caught.

    python mutate.py FILE...

Every FILE must be valid as given. Each mutation kind is applied to every file it fits (a cycle
needs a dependency, a condition mutation needs a condition...); each mutated spec must be
reported invalid, and each kind must have fitted at least one file. Prints one line per
mutation (`caught <kind> <file>: <first error>`) and exits 0 when all were caught, 1 otherwise.
"""

import copy
import sys

import validate_ir


def _leaf_tasks(spec):
    """(tasks dict, key) of every task in every DAG, root first."""
    dags = [spec["root"]] + [c for _, c in sorted((spec.get("components") or {}).items()) if "dag" in c]
    for comp in dags:
        tasks = comp["dag"]["tasks"]
        for key in sorted(tasks):
            yield comp, tasks, key


def drop_component(spec):
    _, tasks, key = next(_leaf_tasks(spec))
    del spec["components"][tasks[key]["componentRef"]["name"]]
    return spec


def dangling_dependent_task(spec):
    _, tasks, key = next(_leaf_tasks(spec))
    tasks[key].setdefault("dependentTasks", []).append("no-such-task")
    return spec


def cycle(spec):
    for _, tasks, key in _leaf_tasks(spec):
        for dep in tasks[key].get("dependentTasks") or []:
            tasks[dep].setdefault("dependentTasks", []).append(key)
            return spec
    return None


def undeclared_output_ref(spec):
    for _, tasks, key in _leaf_tasks(spec):
        for value in ((tasks[key].get("inputs") or {}).get("parameters") or {}).values():
            if "taskOutputParameter" in value:
                value["taskOutputParameter"]["outputParameterKey"] = "no_such_output"
                return spec
    return None


def producer_not_depended_on(spec):
    for _, tasks, key in _leaf_tasks(spec):
        for value in ((tasks[key].get("inputs") or {}).get("parameters") or {}).values():
            if "taskOutputParameter" in value:
                producer = value["taskOutputParameter"]["producerTask"]
                tasks[key]["dependentTasks"] = [d for d in tasks[key].get("dependentTasks", []) if d != producer]
                return spec
    return None


def wrong_default_type(spec):
    params = spec["root"].setdefault("inputDefinitions", {}).setdefault("parameters", {})
    params["mutant"] = {"parameterType": "NUMBER_INTEGER", "defaultValue": "three", "isOptional": True}
    return spec


def wrong_constant_type(spec):
    for _, tasks, key in _leaf_tasks(spec):
        for value in ((tasks[key].get("inputs") or {}).get("parameters") or {}).values():
            if "runtimeValue" in value:
                constant = value["runtimeValue"]["constant"]
                value["runtimeValue"]["constant"] = 1.5 if isinstance(constant, str) else "text"
                return spec
    return None


def bad_schema_version(spec):
    spec["schemaVersion"] = "2.0.0"
    return spec


def bad_name(spec):
    spec["pipelineInfo"]["name"] = "Not A Valid_Name"
    return spec


def unknown_task_field(spec):
    _, tasks, key = next(_leaf_tasks(spec))
    tasks[key]["cachingOption"] = {"enableCache": False}
    return spec


def unknown_executor_field(spec):
    executor = next(iter(spec["deploymentSpec"]["executors"].values()))
    executor["container"]["imagePullPolicy"] = "Always"
    return spec


def unknown_component_input(spec):
    _, tasks, key = next(_leaf_tasks(spec))
    callee = spec["components"][tasks[key]["componentRef"]["name"]]
    callee.setdefault("inputDefinitions", {}).setdefault("parameters", {})["mutant"] = {"parameterType": "STRING"}
    tasks[key].setdefault("inputs", {}).setdefault("parameters", {})["mutant"] = {
        "componentInputParameter": "no-such-parameter"}
    return spec


def missing_required_input(spec):
    for _, tasks, key in _leaf_tasks(spec):
        params = (tasks[key].get("inputs") or {}).get("parameters") or {}
        if params:
            del params[sorted(params)[0]]
            return spec
    return None


def condition_reads_non_input(spec):
    for _, tasks, key in _leaf_tasks(spec):
        policy = tasks[key].get("triggerPolicy") or {}
        if policy.get("condition"):
            policy["condition"] += " && inputs.parameter_values['pipelinechannel--nope'] == 'x'"
            return spec
    return None


def undeclared_placeholder(spec):
    executor = next(iter(spec["deploymentSpec"]["executors"].values()))
    executor["container"].setdefault("command", []).append("{{$.inputs.parameters['no_such_input']}}")
    return spec


def output_never_written(spec):
    for name, comp in sorted(spec["components"].items()):
        if "executorLabel" in comp:
            comp.setdefault("outputDefinitions", {}).setdefault("parameters", {})["unwritten"] = {
                "parameterType": "STRING"}
            return spec
    return None


def bad_executor_label(spec):
    for name, comp in sorted(spec["components"].items()):
        if "executorLabel" in comp:
            comp["executorLabel"] = "exec-no-such-executor"
            return spec
    return None


def bad_dag_output(spec):
    for name, comp in sorted(spec["components"].items()):
        outputs = ((comp.get("dag") or {}).get("outputs") or {}).get("parameters") or {}
        for value in outputs.values():
            value["valueFromParameter"]["outputParameterKey"] = "no_such_output"
            return spec
    return None


MUTATIONS = [drop_component, dangling_dependent_task, cycle, undeclared_output_ref,
             producer_not_depended_on, wrong_default_type, wrong_constant_type, bad_schema_version,
             bad_name, unknown_task_field, unknown_executor_field, unknown_component_input,
             missing_required_input, condition_reads_non_input, undeclared_placeholder,
             output_never_written, bad_executor_label, bad_dag_output]


def main(files):
    if not files:
        print(__doc__, file=sys.stderr)
        return 2
    failed = False
    applied = {m.__name__: 0 for m in MUTATIONS}
    caught = 0
    for path in files:
        _, spec, platform = validate_ir.load(path)
        base = validate_ir.validate_dicts(spec, platform)
        if base.errors:
            print(f"NOT VALID AS GIVEN: {path}: {base.errors[0]}")
            failed = True
            continue
        for mutation in MUTATIONS:
            mutated = mutation(copy.deepcopy(spec))
            if mutated is None:
                continue
            applied[mutation.__name__] += 1
            report = validate_ir.validate_dicts(mutated, platform)
            if report.errors:
                caught += 1
                print(f"caught {mutation.__name__} {path}: {report.errors[0]}")
            else:
                failed = True
                print(f"MISSED {mutation.__name__} {path}")
    for name, count in applied.items():
        if count == 0:
            failed = True
            print(f"NEVER APPLIED {name}: no file fits it")
    print(f"{caught}/{sum(applied.values())} mutations caught, {len(MUTATIONS)} kinds")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
