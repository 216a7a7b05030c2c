"""Pick the best model of the fan-out."""


def pick(context, linear: float, tree: float, forest: float):
    scores = {"linear": linear, "tree": tree, "forest": forest}
    best = max(scores, key=scores.get)
    context.log_results({"best": best, "best_score": scores[best]})
