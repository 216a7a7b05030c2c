#!/usr/bin/env bash
# Runs the churn example end to end on the embedded default: a fresh project in a temporary
# folder, the functions and the workflow logged as code artifacts (a file, an archive and a
# workflow file), then `baton run`. Pass extra `baton run` arguments, e.g. `-a threshold=0.9`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
baton="$repo/target/release/baton"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export BATON_CACHE_DIR="$work/cache"
cp -r "$here/src" "$here/workflow.py" "$work/"
cd "$work"
(cd src/trainer && python3 -m zipfile -c ../../trainer.zip trainer.py utils.py)

"$baton" init --name churn
"$baton" log-code prep_code --local-path src/prep.py
"$baton" log-code evaluate_code --local-path src/evaluate.py
"$baton" log-code trainer_code --local-path trainer.zip
"$baton" log-code churn_workflow --local-path workflow.py --code-type workflow
"$baton" set-function --name prep --func store://artifacts/churn/prep_code --handler prep:main
"$baton" set-function --name evaluate --func store://artifacts/churn/evaluate_code --handler evaluate:pick
"$baton" set-function --name trainer --func store://artifacts/churn/trainer_code --handler trainer:train
"$baton" set-workflow --name main --path store://artifacts/churn/churn_workflow
"$baton" graph main
"$baton" run main "$@"
"$baton" workflows list
