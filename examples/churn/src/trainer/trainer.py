"""Training step of the churn example; lives in an archive with utils.py."""

import utils


def train(context, dataset, algo: str = "linear"):
    """Score one algorithm on the dataset (a deterministic stand-in for real training)."""
    table = utils.load_csv(dataset.local())
    score = utils.score(table, algo)
    context.log_result("score", score)
    context.logger.info("%s scored %.3f on %d rows", algo, score, len(table))
