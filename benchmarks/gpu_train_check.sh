#!/usr/bin/env bash
# GPU paths of training: MAE pretraining and fine-tuning on CUDA with bf16 autocast, the
# fine-tuning under torchrun (DDP over NCCL), with and without pathways, then merge checks.
# Needs the built-in Fashion-MNIST subset in $M2PT_DATA (generate it once on a CPU machine).
# Usage: bash benchmarks/gpu_train_check.sh OUTPUT_FOLDER
set -euo pipefail
out=${1:?output folder}
common=(--modality image --preset small --data-option train_size=12000 --data-option test_size=2000
        --device cuda --quiet --overwrite --batch-size 256)
python3 -m m2pt.cli pretrain "${common[@]}" --recipe cpu-pretrain --output "$out/aux" --epochs 4 --lr 1.5e-3
for arm in plain m2pt; do
  extra=()
  [ "$arm" = m2pt ] && extra=(--aux "$out/aux/encoder.safetensors")
  start=$(date +%s.%N)
  torchrun --standalone --nproc_per_node=1 -m m2pt.cli finetune "${common[@]}" --output "$out/$arm" \
    --epochs 5 --lr 1e-3 "${extra[@]}"
  echo "$arm: $(python3 -c "print(round($(date +%s.%N) - $start, 1))") s"
done
python3 - "$out" <<'PY'
import json, sys
for arm in ("plain", "m2pt"):
    final = json.load(open(f"{sys.argv[1]}/{arm}/final_metrics.json"))
    keys = ("top1", "scale_abs_mean", "merge_max_abs_diff", "merge_same_predictions", "train_seconds")
    print(arm, {k: final[k] for k in keys if k in final})
PY
