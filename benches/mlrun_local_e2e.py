"""One `project.run(engine="local")` of MLRun's own local engine on a workflow of trivial steps,
the whole process timed by the caller (`benches/workflow_e2e.rs`).

    python mlrun_local_e2e.py SHAPE STEPS

SHAPE is `chain` (each step `.after()` the previous one) or `fan` (independent steps). The
current folder is the work folder; MLRUN_DBPATH must be unset. Each step runs `def main():
return 1`, as baton's bench does. Prints one JSON line: {"state", "import_s", "run_s"}.
"""

import json
import os
import sys
import time

HANDLER = "def main():\n    return 1\n"

WORKFLOW = '''from kfp import dsl
import mlrun


@dsl.pipeline(name="{shape}")
def pipeline():
    project = mlrun.get_current_project()
    previous = None
    for i in range({steps}):
        step = project.run_function("triv", name=f"s{{i:02d}}", outputs=["return"])
        if {chain} and previous is not None:
            step.after(previous)
        previous = step
'''


def main():
    shape, steps = sys.argv[1], int(sys.argv[2])
    with open("triv.py", "w") as f:
        f.write(HANDLER)
    with open("wf.py", "w") as f:
        f.write(WORKFLOW.format(shape=shape, steps=steps, chain=shape == "chain"))
    start = time.perf_counter()
    import mlrun

    import_s = time.perf_counter() - start
    project = mlrun.get_or_create_project("bench", context="./ctx")
    project.set_function(
        func=os.path.abspath("triv.py"), name="triv", kind="job", handler="main", image="mlrun/mlrun"
    )
    project.set_workflow(name=shape, workflow_path=os.path.abspath("wf.py"))
    start = time.perf_counter()
    run = project.run(name=shape, engine="local", watch=True)
    run_s = time.perf_counter() - start
    print(json.dumps({"state": str(run.state).lower(), "import_s": import_s, "run_s": run_s}), flush=True)


if __name__ == "__main__":
    main()
