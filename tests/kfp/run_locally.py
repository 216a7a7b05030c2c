"""Runs a compiled KFP v2 pipeline spec on this machine, the way KFP's driver and launcher would:
tasks in dependency order, inputs resolved (constants, pipeline parameters, producers' output
parameters), placeholders substituted into each executor's command, outputs read back from the
files the container wrote, condition sub-DAGs entered only when their CEL trigger holds.

It shows that what `baton compile` emits and what `baton runner --kfp` accepts fit together; it
is not KFP (no pods, no caching, no retries). Standard library only.

Usage: python run_locally.py SPEC.json BATON_BIN WORKDIR [name=json ...]
Prints one JSON object: {"tasks": {"<display name>": {"state": "SUCCEEDED"|"SKIPPED",
"outputs": {...}}}}; exits 1 when a task's command fails.
"""

import json
import os
import re
import subprocess
import sys

PLACEHOLDER = re.compile(r"\{\{\$\.(inputs|outputs)\.parameters\['([^']+)'\](\.output_file)?\}\}")
JOB_UUID = "local-run-0001"


def render(value, ptype):
    """A parameter value as KFP substitutes it into a command."""
    if isinstance(value, str):
        return value
    if ptype == "NUMBER_INTEGER":
        return str(int(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def cel(condition, values):
    """Evaluates the CEL subset the compiler emits over the task's own inputs."""
    text = re.sub(r"inputs\.parameter_values\['([^']+)'\]", lambda m: "_p(%r)" % m.group(1),
                  condition)
    text = text.replace("&&", " and ").replace("||", " or ")
    text = re.sub(r"!(?!=)", " not ", text)
    text = re.sub(r"\bdouble\(", "float(", text)
    text = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", text))
    return bool(eval(text, {"_p": lambda name: values[name], "float": float, "int": int}))


class Runner:
    def __init__(self, spec, baton, workdir):
        self.spec = spec
        self.baton = baton
        self.workdir = workdir
        self.report = {}

    def run_dag(self, component, inputs, types):
        tasks = component["dag"]["tasks"]
        done, outputs = set(), {}
        while len(done) < len(tasks):
            ready = [name for name, task in sorted(tasks.items()) if name not in done
                     and all(dep in done for dep in self.deps(task))]
            if not ready:
                raise SystemExit("dependency cycle among %s" % sorted(set(tasks) - done))
            for name in ready:
                done.add(name)
                outputs[name] = self.run_task(tasks[name], inputs, types, outputs)
        result = {}
        for key, source in component["dag"].get("outputs", {}).get("parameters", {}).items():
            producer = source["valueFromParameter"]
            produced = outputs.get(producer["producerSubtask"])
            if produced is not None and producer["outputParameterKey"] in produced:
                result[key] = produced[producer["outputParameterKey"]]
        return result

    @staticmethod
    def deps(task):
        deps = set(task.get("dependentTasks", []))
        for source in task.get("inputs", {}).get("parameters", {}).values():
            if "taskOutputParameter" in source:
                deps.add(source["taskOutputParameter"]["producerTask"])
        return deps

    def run_task(self, task, inputs, types, outputs):
        display = task.get("taskInfo", {}).get("name", task["componentRef"]["name"])
        if any(outputs.get(dep) is None for dep in self.deps(task)):
            self.report[display] = {"state": "SKIPPED"}
            return None
        callee = self.spec["components"][task["componentRef"]["name"]]
        declared = callee.get("inputDefinitions", {}).get("parameters", {})
        values, value_types = {}, {}
        for name, source in task.get("inputs", {}).get("parameters", {}).items():
            if "runtimeValue" in source:
                values[name] = source["runtimeValue"]["constant"]
            elif "componentInputParameter" in source:
                values[name] = inputs[source["componentInputParameter"]]
            else:
                producer = source["taskOutputParameter"]
                values[name] = outputs[producer["producerTask"]][producer["outputParameterKey"]]
            value_types[name] = declared.get(name, {}).get("parameterType", "STRING")
        condition = task.get("triggerPolicy", {}).get("condition")
        if condition and not cel(condition, values):
            self.report[display] = {"state": "SKIPPED"}
            return None
        if "dag" in callee:
            return self.run_dag(callee, values, value_types)
        return self.run_container(display, callee, values, value_types)

    def run_container(self, display, callee, values, types):
        executor = self.spec["deploymentSpec"]["executors"][callee["executorLabel"]]
        container = executor["container"]
        out_dir = os.path.join(self.workdir, display)
        files = {}

        def substitute(match):
            kind, name, output_file = match.groups()
            if kind == "inputs":
                return render(values[name], types.get(name))
            files[name] = os.path.join(out_dir, name)
            return files[name]

        command = [PLACEHOLDER.sub(substitute, part).replace("{{$.pipeline_job_uuid}}", JOB_UUID)
                   for part in container["command"] + container.get("args", [])]
        if command[0] == "baton":
            command[0] = self.baton
        env = dict(os.environ)
        for var in container.get("env", []):
            env[var["name"]] = var["value"]
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.stderr.write("task %s failed (%d): %s\n%s" % (display, done.returncode,
                                                             " ".join(command), done.stderr))
            raise SystemExit(1)
        produced = {}
        for name, path in files.items():
            with open(path, encoding="utf-8") as f:
                produced[name] = f.read()
        self.report[display] = {"state": "SUCCEEDED", "outputs": produced}
        return produced


def main():
    spec_path, baton, workdir = sys.argv[1:4]
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    given = dict(arg.split("=", 1) for arg in sys.argv[4:])
    root = spec["root"]
    params = root.get("inputDefinitions", {}).get("parameters", {})
    inputs = {name: json.loads(given[name]) if name in given else p.get("defaultValue")
              for name, p in params.items()}
    types = {name: p["parameterType"] for name, p in params.items()}
    runner = Runner(spec, baton, workdir)
    runner.run_dag(root, inputs, types)
    print(json.dumps({"tasks": runner.report}))


main()
