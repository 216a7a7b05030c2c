"""One measured `project.run(...)` of a chain of trivial steps through the real MLRun client.

    python mlrun_remote.py ENGINE STEPS [PROJECT]

ENGINE is `local` (MLRun's own local engine, in this process, no server: MLRUN_DBPATH must be
unset) or `remote:local` (the workflow runs on the server at MLRUN_DBPATH, a `baton server`;
the client watches it). The current folder is the work folder. The process does what a user's
script would: imports mlrun, creates the project, registers the function and the workflow, then
runs it, in project PROJECT (default `bench`). It prints one JSON line on stdout:

    {"engine", "import_s", "setup_s", "run_s", "state", "workflow_id", "server": {...}}

`server` (remote only) is the server's record of the workflow run
(`GET /api/baton/v1/projects/{p}/workflow-runs/{id}`): its state, step count and the seconds
between its `started` and `finished` (the server's own time for the workflow), and the medians
of a step's time and of the gap between chained steps.

`benches/mlrun_remote.rs` (`cargo bench --bench mlrun_remote`) starts the server, runs this
script with the MLRun venv's interpreter and prints the table.
"""

import json
import os
import sys
import time
import urllib.request
from datetime import datetime

# Each step adds one to the previous step's output, so the last step returns STEPS.
HANDLER = "def main(x=0):\n    return x + 1\n"

WORKFLOW = '''from kfp import dsl
import mlrun

STEPS = {steps}


@dsl.pipeline(name="chain")
def pipeline():
    project = mlrun.get_current_project()
    step = project.run_function("triv", name="s00", params={{"x": 0}}, outputs=["return"])
    for i in range(1, STEPS):
        step = project.run_function(
            "triv", name=f"s{{i:02d}}", params={{"x": step.outputs["return"]}}, outputs=["return"]
        )
'''


def seconds(since):
    return time.perf_counter() - since


def parse_time(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def server_record(url, project, workflow_id):
    req = urllib.request.Request(
        f"{url}/api/baton/v1/projects/{project}/workflow-runs/{workflow_id}"
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        record = json.loads(resp.read())
    steps = record.get("steps", [])
    finished = record.get("finished")
    spans = [
        (parse_time(s["started"]), parse_time(s["finished"]))
        for s in steps
        if s.get("started") and s.get("finished")
    ]
    # Each step's own time, and the gap from one step's end to the next one's start (the
    # dispatcher's part of a chain).
    step_ms = sorted((end - start).total_seconds() * 1e3 for start, end in spans)
    gap_ms = sorted(
        (spans[i][0] - spans[i - 1][1]).total_seconds() * 1e3 for i in range(1, len(spans))
    )
    return {
        "state": str(record.get("state")).lower(),
        "steps": len(steps),
        "succeeded": sum(1 for s in steps if str(s.get("state")).lower() == "succeeded"),
        "last_return": steps[-1].get("outputs", {}).get("return") if steps else None,
        "step_ms_median": step_ms[len(step_ms) // 2] if step_ms else None,
        "gap_ms_median": gap_ms[len(gap_ms) // 2] if gap_ms else None,
        "duration_s": (parse_time(finished) - parse_time(record["started"])).total_seconds()
        if finished
        else None,
    }


def main():
    engine, steps = sys.argv[1], int(sys.argv[2])
    name = sys.argv[3] if len(sys.argv) > 3 else "bench"
    remote = engine.startswith("remote")
    url = os.environ.get("MLRUN_DBPATH")
    if remote and not url:
        sys.exit("MLRUN_DBPATH must point at a baton server for a remote engine")
    if not remote and url:
        sys.exit("unset MLRUN_DBPATH for the local engine: it runs without a server")

    with open("triv.py", "w") as f:
        f.write(HANDLER)
    with open("chain.py", "w") as f:
        f.write(WORKFLOW.format(steps=steps))

    start = time.perf_counter()
    import mlrun

    import_s = seconds(start)

    start = time.perf_counter()
    project = mlrun.get_or_create_project(name, context="./ctx")
    if remote:
        # The server runs code from code artifacts, and loads the project from its database.
        func = project.log_code_file("triv_code", local_path="./triv.py")
        project.log_code_file("chain_code", local_path="./chain.py", code_type="workflow")
        project.set_function(func=func.uri, name="triv", kind="job", handler="triv:main")
        project.set_workflow(name="chain", workflow_path=f"store://artifacts/{name}/chain_code")
        project.save()
    else:
        project.set_function(
            func=os.path.abspath("triv.py"), name="triv", kind="job", handler="main", image="mlrun/mlrun"
        )
        project.set_workflow(name="chain", workflow_path=os.path.abspath("chain.py"))
    setup_s = seconds(start)

    start = time.perf_counter()
    run = project.run(name="chain", engine=engine, watch=True)
    run_s = seconds(start)

    state = run.state
    result = {
        "engine": engine,
        "import_s": import_s,
        "setup_s": setup_s,
        "run_s": run_s,
        "state": state,
        "workflow_id": run.run_id,
    }
    if run.exc is not None or str(state).lower() != "succeeded":
        result["error"] = repr(run.exc)
    if remote:
        result["server"] = server_record(url, name, run.run_id)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
