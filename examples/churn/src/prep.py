"""Data preparation and publishing steps of the churn example."""

import random


def main(context, rows: int = 1000, seed: int = 7):
    """Generate a small synthetic churn table and log it as the `dataset` artifact."""
    rng = random.Random(seed)
    lines = ["tenure,spend,churned"]
    for _ in range(rows):
        tenure = rng.randint(1, 72)
        spend = round(rng.uniform(10, 120), 2)
        churned = int(tenure < 12 and spend > 60)
        lines.append(f"{tenure},{spend},{churned}")
    context.log_artifact("dataset", body="\n".join(lines) + "\n", format="csv")
    context.log_result("rows", rows)
    context.logger.info("prepared %d rows", rows)


def publish(context, model: str, score: float):
    """Pretend to publish the winning model."""
    context.logger.info("publishing %s (score %.3f)", model, score)
    context.log_result("published", f"{model}@{score:.3f}")
