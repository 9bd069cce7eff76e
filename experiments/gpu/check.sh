#!/usr/bin/env bash
# GPU check (issue 15), one short run (< 8 min on one GPU): writes check.json, <section>.json and summary.md under $OUT.
#   OUT=/tmp/gpu_check experiments/gpu/check.sh             # on a GPU machine, from the repository root
#   OUT=/tmp/gpu_dry experiments/gpu/check.sh --dry-run     # the same code paths on the CPU at tiny sizes (tests/test_speed_gpu_check.py)
# Sections (experiments/gpu/check.py): train (base384, batch 10, 1024 frames: fp32 eager vs bf16 + compile it/s),
# tome_eval (ToMe r=101 eval speedup at batch 1, 32, 128; bf16 and bf16 + ToMe at batch 32), frontend (batched
# FbankFrontend vs torchaudio's kaldi.fbank loop, both on the GPU), ddp (a training run with DDP on one GPU),
# memory (peak training memory per clip with/without ToMe and bf16). A failing section is recorded, the rest still run.
set -euo pipefail
: "${OUT:?set OUT to the directory the results go to}"
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 WANDB_MODE=offline PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
timeout "${CHECK_TIMEOUT_S:-470}" "$PYTHON" experiments/gpu/check.py --out "$OUT" "$@"
