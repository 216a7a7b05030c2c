#!/usr/bin/env python3
"""The reference diamond pipeline compiled by the KFP SDK, compared with baton's compilation.

    python diamond_sdk.py BATON_SPEC [--write SDK_SPEC]

Compiles, with kfp 2.17.3, A=producer -> B=transform(A.msg) (data), C=transform(greeting).after(A)
(control), D=join(B.result, C.result), and `with dsl.If(A.flag == 'yes')`: E=join(A.msg,
'conditional'); A retries 3 times. Then compares the structure of both specs: pipeline
parameters (types, defaults), tasks by display name, each task's input wiring (pipeline
parameter, producer output or constant, followed through condition sub-DAGs), ordering edges,
trigger conditions (operands, operator, literal) and retry counts. Task keys, component names and
commands may differ. Exit 0 when the structures match, 1 with both structures printed otherwise.
"""

import json
import re
import sys
import tempfile

import yaml
from kfp import compiler, dsl

IMAGE = "alpine:3.19"


@dsl.container_component
def producer(greeting: str, msg: dsl.OutputPath(str), flag: dsl.OutputPath(str)):
    return dsl.ContainerSpec(
        image=IMAGE,
        command=["sh", "-c"],
        args=['mkdir -p "$(dirname "$0")" "$(dirname "$1")"; printf "%s from A" "$2" > "$0"; '
              'printf yes > "$1"', msg, flag, greeting],
    )


@dsl.container_component
def transform(text: str, result: dsl.OutputPath(str)):
    return dsl.ContainerSpec(
        image=IMAGE,
        command=["sh", "-c"],
        args=['mkdir -p "$(dirname "$0")"; printf "%s" "$1" | tr a-z A-Z > "$0"', result, text],
    )


@dsl.container_component
def join(left: str, right: str, result: dsl.OutputPath(str)):
    return dsl.ContainerSpec(
        image=IMAGE,
        command=["sh", "-c"],
        args=['mkdir -p "$(dirname "$0")"; printf "%s|%s" "$1" "$2" > "$0"', result, left, right],
    )


@dsl.pipeline(name="diamond-demo")
def diamond(greeting: str = "hello", threshold: int = 3):
    a = producer(greeting=greeting).set_display_name("A").set_retry(3, "30s")
    b = transform(text=a.outputs["msg"]).set_display_name("B")
    c = transform(text=greeting).set_display_name("C").after(a)
    d = join(left=b.outputs["result"], right=c.outputs["result"]).set_display_name("D")
    with dsl.If(a.outputs["flag"] == "yes"):
        e = join(left=a.outputs["msg"], right="conditional").set_display_name("E")
    for task in (a, b, c, d, e):
        task.set_caching_options(False)


COND = re.compile(r"^\s*(.+?)\s*(==|!=|<=|>=|<|>)\s*(.+?)\s*$")
VALUE = re.compile(r"inputs\.parameter_values\[['\"]([^'\"]+)['\"]\]")


def structure(spec):
    """The parts of a spec that must match, independent of task keys and component names."""
    components = spec.get("components") or {}
    params = {n: (d["parameterType"], d.get("defaultValue"))
              for n, d in ((spec["root"].get("inputDefinitions") or {}).get("parameters") or {}).items()}
    tasks = {}

    def leaves(comp, key):
        """Display names of the leaf tasks behind task `key` of `comp`."""
        task = comp["dag"]["tasks"][key]
        callee = components[task["componentRef"]["name"]]
        if "dag" in callee:
            return sorted(n for k in callee["dag"]["tasks"] for n in leaves(callee, k))
        return [task["taskInfo"]["name"]]

    def source(value, scope):
        if "componentInputParameter" in value:
            name = value["componentInputParameter"]
            return scope(name)
        if "taskOutputParameter" in value:
            raise AssertionError("resolved by the caller")
        return ("const", value["runtimeValue"]["constant"])

    def walk(comp, scope, outer_deps, outer_condition):
        for key, task in comp["dag"]["tasks"].items():
            callee = components[task["componentRef"]["name"]]

            def resolve(value, comp=comp, scope=scope):
                if "taskOutputParameter" in value:
                    top = value["taskOutputParameter"]
                    producer_task = comp["dag"]["tasks"][top["producerTask"]]
                    pcomp = components[producer_task["componentRef"]["name"]]
                    out = top["outputParameterKey"]
                    if "dag" in pcomp:
                        sub = pcomp["dag"]["outputs"]["parameters"][out]["valueFromParameter"]
                        return ("out", pcomp["dag"]["tasks"][sub["producerSubtask"]]["taskInfo"]["name"],
                                sub["outputParameterKey"])
                    return ("out", producer_task["taskInfo"]["name"], out)
                return source(value, scope)

            inputs = {n: resolve(v) for n, v in ((task.get("inputs") or {}).get("parameters") or {}).items()}
            deps = set(outer_deps)
            for dep in task.get("dependentTasks") or []:
                deps.update(leaves(comp, dep))
            condition = outer_condition
            policy = (task.get("triggerPolicy") or {}).get("condition")
            if policy:
                lhs, op, rhs = COND.match(policy).groups()

                def operand(text, inputs=inputs):
                    m = VALUE.fullmatch(text)
                    if m:
                        return inputs[m.group(1)]
                    literal = text.strip("'")
                    try:  # baton compares step outputs as JSON text ('"yes"')
                        decoded = json.loads(literal)
                        literal = decoded if isinstance(decoded, str) else literal
                    except ValueError:
                        pass
                    return ("literal", literal)

                condition = (operand(lhs), op, operand(rhs))
            if "dag" in callee:
                walk(callee, lambda name, inputs=inputs: inputs[name], deps, condition)
            else:
                tasks[task["taskInfo"]["name"]] = {
                    "inputs": inputs,
                    "after": sorted(deps),
                    "condition": condition,
                    "retries": (task.get("retryPolicy") or {}).get("maxRetryCount", 0),
                }

    walk(spec["root"], lambda name: ("arg", name), set(), None)
    return {"params": params, "tasks": tasks}


def main(argv):
    files = [a for a in argv if not a.startswith("--")]
    if len(files) < 1:
        print(__doc__, file=sys.stderr)
        return 2
    with tempfile.NamedTemporaryFile(suffix=".yaml") as out:
        compiler.Compiler().compile(diamond, out.name)
        sdk_text = open(out.name, encoding="utf-8").read()
    if "--write" in argv:
        with open(files[1], "w", encoding="utf-8") as f:
            f.write(sdk_text)
    sdk = structure(yaml.safe_load(sdk_text))
    with open(files[0], encoding="utf-8") as f:
        ours = structure(yaml.safe_load(f))
    if json.dumps(sdk, sort_keys=True, default=list) == json.dumps(ours, sort_keys=True, default=list):
        print(f"same structure: {len(sdk['tasks'])} tasks, {len(sdk['params'])} parameters")
        return 0
    print("SDK:  " + json.dumps(sdk, sort_keys=True, indent=1, default=list))
    print("baton:" + json.dumps(ours, sort_keys=True, indent=1, default=list))
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
