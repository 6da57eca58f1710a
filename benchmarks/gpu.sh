#!/usr/bin/env bash
# Samples per second of 50-step DDIM with classifier-free guidance on a CUDA GPU (benchmarks/gpu.py):
#   benchmarks/gpu.sh [--compile] [--dtype fp16] [--batch 4096] [--repeats 5]
# Uses $PYTHON if set, else .venv/bin/python (whose torch must be a CUDA build), else python3.
# Without CUDA it says so and exits 0. Nothing is downloaded: the weights are the package's shipped ones.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec "$PYTHON" benchmarks/gpu.py "$@"
