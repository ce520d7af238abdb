#!/usr/bin/env bash
# Publish a converged study's aggregated results into the repository's results/converged.
#
# Usage: scripts/publish_converged.sh STUDY_DIR
#
# Rewrites STUDY_DIR's tables and figures from its rows (safe beside the running study),
# then copies what the repository keeps: the rows, the summary, the pretraining curves and
# the figures. Model files, checkpoints and logs stay in STUDY_DIR. Run the tests in
# tests/experiments afterwards: they check that the committed rows match the plan.
set -euo pipefail
study="${1:?usage: scripts/publish_converged.sh STUDY_DIR (the --output of m2pt reproduce --profile converged)}"
if [[ ! -f "$study/results.jsonl" ]]; then
  echo "publish_converged: $study/results.jsonl does not exist; pass the folder given to --output" >&2
  exit 2
fi
study="$(cd "$study" && pwd)"
cd "$(dirname "$0")/.."
.venv/bin/m2pt reproduce --profile converged --output "$study" --aggregate-only
target=results/converged
mkdir -p "$target/figures"
for name in results.jsonl summary.md summary.csv pretrain_curves.json; do
  cp "$study/$name" "$target/$name.tmp" && mv "$target/$name.tmp" "$target/$name"
done
cp "$study"/figures/*.png "$target/figures/"
echo "published $(wc -l < "$target/results.jsonl") rows and $(ls "$study"/figures/*.png | wc -l) figures into $target"
