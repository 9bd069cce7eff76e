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
FT="model.pretrained=$CKPT model.pretrained_format=project trainer.max_epochs=1 model.optim.schedule.warmup_steps=0"
$PY -m fast_ast.train $DATA $MODEL $QUIET $FT model=ast_tome tome.r=32 hydra.run.dir=$S/ft_tome &
$PY -m fast_ast.train $DATA $MODEL $QUIET $FT tome=prune tome.keep_rate=0.7 hydra.run.dir=$S/ft_prune &
wait
# 3. the searched schedules at half the FLOPs (off the shelf, validation split)
$PY -m fast_ast.tune_reduction ckpt_path=$CKPT $DATA budget=0.5 method=tome time_limit_s=300 hydra.run.dir=$S/tune_tome
$PY -m fast_ast.tune_reduction ckpt_path=$CKPT $DATA budget=0.5 method=prune time_limit_s=300 hydra.run.dir=$S/tune_prune
# 4. one checkpoint under many reductions (off the shelf), validation split; then the report, re-measured side by side
EVAL="split=val trainer.enable_progress_bar=false throughput.repeats=3"
$PY -m fast_ast.eval -m ckpt_path=$CKPT $DATA $EVAL 'tome={r:0},{r:16},{r:32},{r:48},{r:32,inflection:-1},{method:prune,r:0,keep_rate:0.9},{method:prune,r:0,keep_rate:0.8},{method:prune,r:0,keep_rate:0.7},{method:prune,r:0,keep_rate:0.6},{method:temporal,r:2},{method:temporal,r:4},{method:temporal,r:6}' hydra.sweep.dir=$S/eval_offshelf
