#!/usr/bin/env bash
# The GPU profile of `m2pt reproduce`, unattended, on one GPU: baseline, point pathway, its random
# and permuted controls on the full built-in image set (tiny preset), and MiniLM with its two
# controls on the small preset; 3 seeds; sized for about 10 minutes on one GPU with several runs at
# once (not measured yet: no GPU was available when it was written).
# Writes the same results folder as the CPU profiles (results.jsonl, summary.md, figures/) plus
# hardware.txt (GPU, driver, torch) and log.txt.
#
#   scripts/gpu_reproduce.sh --list             print the plan (any machine, no GPU needed)
#   scripts/gpu_reproduce.sh prepare            on a CPU machine with dataset-fashion-mnist: write the
#                                               Fashion-MNIST subset into .gpu-data/ (47 MB; carry it)
#   scripts/gpu_reproduce.sh run [OUTPUT]       on the GPU machine (default OUTPUT: results/gpu);
#                                               rerun the same command to resume
#
# Environment: PYTHON (default: .venv/bin/python if present, else python3), M2PT_DATA (default
# .gpu-data), WORKERS (runs at once, default 6), THREADS (torch threads per worker, default
# cores / WORKERS). Wheels in .whl/ (the device machine's way to bring packages) are installed
# into /tmp/site first.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
python=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
export M2PT_DATA=${M2PT_DATA:-$repo/.gpu-data}
mode=${1:---list}

case "$mode" in
  --list|list)
    exec "$python" -m m2pt.cli reproduce --profile gpu --list
    ;;
  prepare)
    "$python" - <<'PY'
from m2pt.data import FashionMNISTDataset
from m2pt.experiments.budgets import get_profile

data = get_profile("gpu").finetune["image"]["data_options"]
dataset = FashionMNISTDataset("train", train_size=data["train_size"], test_size=data["test_size"], seed=0)
print(f"Fashion-MNIST {data['train_size']} train / {data['test_size']} test images in {dataset.folder}")
PY
    du -sh "$M2PT_DATA"
    ;;
  run)
    output=${2:-results/gpu}
    if [ -d .whl ] && compgen -G ".whl/*.whl" > /dev/null; then
      "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl
      export PYTHONPATH="$PYTHONPATH:/tmp/site"
    fi
    if ! "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
      echo "gpu_reproduce.sh: no CUDA device visible to torch; run this on a GPU machine (use --list here)" >&2
      exit 2
    fi
    "$python" - <<'PY' || { echo "gpu_reproduce.sh: run 'scripts/gpu_reproduce.sh prepare' on a CPU machine with dataset-fashion-mnist and bring .gpu-data along" >&2; exit 2; }
import os, sys
from pathlib import Path
from m2pt.experiments.budgets import get_profile

data = get_profile("gpu").finetune["image"]["data_options"]
folder = Path(os.environ["M2PT_DATA"]) / "fashion_mnist" / f"train{data['train_size']}_test{data['test_size']}_seed0"
if not folder.is_dir() and not Path("/usr/share/datasets/fashion-mnist").is_dir():
    sys.exit(f"missing {folder}")
PY
    mkdir -p "$output"
    {
      nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
      "$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
      echo "cpu cores: $(nproc)"
      date -u +"started %Y-%m-%d %H:%M:%S UTC"
    } > "$output/hardware.txt"
    workers=${WORKERS:-6}
    threads=${THREADS:-$(( $(nproc) / workers > 0 ? $(nproc) / workers : 1 ))}
    start=$(date +%s)
    "$python" -m m2pt.cli reproduce --profile gpu --output "$output" --workers "$workers" --threads "$threads" \
      --no-estimate 2>&1 | tee -a "$output/log.txt"
    echo "wall: $(( $(date +%s) - start )) s with $workers workers of $threads threads" | tee -a "$output/hardware.txt"
    ;;
  *)
    echo "usage: scripts/gpu_reproduce.sh [--list | prepare | run [OUTPUT]]" >&2
    exit 2
    ;;
esac
