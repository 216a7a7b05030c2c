"""The churn workflow: prepare -> train three models in parallel -> pick the best -> publish it
when it is good enough. Written as for MLRun's KFP engine; baton traces it into a step DAG."""

import mlrun
from kfp import dsl


@dsl.pipeline(name="churn")
def pipeline(rows: int = 1000, threshold: float = 0.7):
    project = mlrun.get_current_project()
    prep = project.run_function(
        "prep", handler="prep:main", params={"rows": rows}, outputs=["dataset", "rows"]
    )
    scores = {}
    for algo in ["linear", "tree", "forest"]:
        step = funcs["trainer"].as_step(
            name=f"train-{algo}",
            handler="trainer:train",
            params={"algo": algo},
            inputs={"dataset": prep.outputs["dataset"]},
            outputs=["score"],
        )
        scores[algo] = step.outputs["score"]
    pick = project.run_function(
        "evaluate", handler="evaluate:pick", params=scores, outputs=["best", "best_score"]
    )
    with dsl.Condition(pick.outputs["best_score"] > threshold):
        project.run_function(
            "prep",
            name="publish",
            handler="prep:publish",
            params={"model": pick.outputs["best"], "score": pick.outputs["best_score"]},
        )
