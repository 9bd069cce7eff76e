#!/usr/bin/env bash
# The speed-lever measurements of experiments/speed/README.md, in order (each writes its JSON under experiments/speed/<name>/).
# Run from the repository root with the venv active: bash experiments/speed/run.sh [name ...]   (no names: all)
set -euo pipefail
export HF_HUB_OFFLINE=1 WANDB_MODE=offline
PY="${PYTHON:-python}"
D=experiments/speed
BASE384="model/backbone=base384 data.clip_seconds=10.24 data.features.target_length=1024"
run() { local name=$1; shift; if [ -z "$WANTED" ] || [[ " $WANTED " == *" $name "* ]]; then echo "== $name: $*"; /usr/bin/time -f "$name: %e s wall" "$@"; fi; }
WANTED="$*"

# 1. bf16 autocast vs float32 (and compile) on the default model (mini, 1 s clips), eval + train step, batch 8
run precision_mini $PY -m fast_ast.bench suite=precision batch_size=8 warmup=1 repeats=5 precision_suite.train_repeats=3 \
    'precision_suite.tome_r=[0,8]' hydra.run.dir=$D/precision_mini
# 2. accuracy of each precision (and ToMe) on the default run's checkpoint (5 epochs of the default config)
run train_default $PY -m fast_ast.train trainer.max_epochs=5 logger=none trainer.enable_progress_bar=false hydra.run.dir=$D/default_run
for p in 32-true bf16-mixed; do
  for r in 0 8; do
    run eval_${p}_r$r $PY -m fast_ast.eval ckpt_path=$D/default_run/checkpoints/last.ckpt split=val precision=$p tome.r=$r \
        trainer.enable_progress_bar=false hydra.run.dir=$D/eval_${p}_r$r
  done
done
# 3. transformers' training path vs ours: default model, then base384 at 1024 frames
run hf_train_mini $PY -m fast_ast.bench suite=hf_train hf_train_suite.clips=64 hf_train_suite.batch_size=16 hf_train_suite.step_repeats=5 \
    hf_train_suite.epochs=4 hydra.run.dir=$D/hf_train_mini
run hf_train_base384 $PY -m fast_ast.bench suite=hf_train $BASE384 hf_train_suite.clips=4 hf_train_suite.batch_size=2 \
    hf_train_suite.step_repeats=2 hf_train_suite.epochs=2 'hf_train_suite.project_r=[0,101]' hydra.run.dir=$D/hf_train_base384
# 4. peak training memory per clip, base384 at 1024 frames, with and without ToMe
run memory_base384 $PY -m fast_ast.bench suite=memory $BASE384 'memory_suite.tome_r=[0,101]' 'memory_suite.batch_sizes=[1,2]' \
    memory_suite.budget_gb=16 hydra.run.dir=$D/memory_base384
# 5. torch.compile (inductor) and ToMe on base384 at 1024 frames, fp32 (bf16 is emulated on this CPU: see README), batch 1
run compile_base384 $PY -m fast_ast.bench suite=precision $BASE384 batch_size=1 warmup=1 repeats=3 precision_suite.train_repeats=2 \
    'precision_suite.contenders=[[32-true,false,0],[32-true,true,0],[32-true,false,101],[32-true,true,101]]' \
    hydra.run.dir=$D/compile_base384
