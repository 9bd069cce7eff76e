#!/usr/bin/env bash
# The token-reduction study: exact commands (run from the repository root). See README.md here.
set -euo pipefail
. experiments/token_reduction/common.sh
S=experiments/token_reduction/runs
PY="python"
# 1. the plain model: mini AST (250 tokens), built-in corpus at 5 s, 4 epochs
$PY -m fast_ast.train $DATA $MODEL $QUIET trainer.max_epochs=4 hydra.run.dir=$S/plain
CKPT=$(ls $S/plain/checkpoints/best-*.ckpt | head -1)
# 2. trained with reduction: 1 more epoch from the plain weights, with ToMe / pruning
#    (NOT RUN to completion in this study: at the machine's load, 10 of 38 steps took 9 min; see README.md)
FT="model.pretrained=$CKPT model.pretrained_format=project trainer.max_epochs=1 model.optim.schedule.warmup_steps=0"
$PY -m fast_ast.train $DATA $MODEL $QUIET $FT model=ast_tome tome.r=32 hydra.run.dir=$S/ft_tome &
$PY -m fast_ast.train $DATA $MODEL $QUIET $FT tome=prune tome.keep_rate=0.7 hydra.run.dir=$S/ft_prune &
wait
# 3. the searched schedule at half the FLOPs (off the shelf, validation split: 100 clips)
$PY -m fast_ast.tune_reduction ckpt_path=$CKPT $DATA data.val_size=100 budget=0.5 method=tome step=10 time_limit_s=240 hydra.run.dir=$S/tune_tome
# 4. one checkpoint under many reductions (off the shelf), validation split (50 clips); in-job timings are
#    single-shot (the machine was loaded): the report re-measures every setting side by side
EVAL="split=val data.val_size=50 trainer.enable_progress_bar=false throughput.repeats=1 throughput.batch_sizes=[1,8]"
$PY -m fast_ast.eval -m ckpt_path=$CKPT $DATA $EVAL 'tome={r:0},{r:16},{r:32},{method:prune,r:0,keep_rate:0.7},{method:temporal,r:4}' hydra.sweep.dir=$S/eval_offshelf
$PY -m fast_ast.report $S/eval_offshelf --remeasure --repeats 1 --out experiments/token_reduction/offshelf
