#!/usr/bin/env bash
# The consistent-views KD study (README in this folder). From the repository root:
#   bash experiments/kd_consistent/run.sh            (step 1, the teacher, is skipped when its checkpoint exists)
set -euo pipefail
OUT=${OUT:-outputs/kd_consistent}
AUG="data.augment.freqm=48 data.augment.timem=40 data.augment.time_shift=10 data.augment.noise=0.1"
# 1. teacher: the default mini AST (1.84 M) on the full built-in corpus (3000 labelled clips), same augmentation
if [ ! -f "$OUT/teacher/checkpoints/best-epoch09.ckpt" ]; then
  python -m fast_ast.train $AUG trainer.enable_progress_bar=false hydra.run.dir=$OUT/teacher
fi
TEACHER=$(ls $OUT/teacher/checkpoints/best-*.ckpt | head -1)
# the students' corpus: the first 1000 training clips, 10% of them labelled
DATA="data.train_size=1000 data.labelled_fraction=0.1 $AUG"
# 2. clean single-view logits (one un-augmented view per clip) and 3. E=3 stored augmented views
[ -f $OUT/clean.safetensors ] || python -m fast_ast.teacher ckpt_path=$TEACHER $DATA output=$OUT/clean.safetensors hydra.run.dir=$OUT/teacher_clean
[ -f $OUT/views.safetensors ] || python -m fast_ast.teacher ckpt_path=$TEACHER $DATA views=3 output=$OUT/views.safetensors hydra.run.dir=$OUT/teacher_views
# 4. students: a tiny AST (64 wide, 2 blocks, 2 heads: 0.12 M), 8 epochs, 3 seeds per condition (run side by side)
S="model.backbone.embed_dim=64 model.backbone.depth=2 model.backbone.num_heads=2 $DATA trainer.max_epochs=8 \
   model.optim.lr=2e-3 model.optim.schedule.warmup_steps=20 \
   trainer.enable_progress_bar=false logger=none seed=1,2,3"
export OMP_NUM_THREADS=1
python -m fast_ast.train -m $S hydra.sweep.dir=$OUT/no_kd > $OUT/no_kd.log 2>&1 &
python -m fast_ast.train -m $S kd=logits kd.path=$OUT/clean.safetensors kd.lambda=0.5 hydra.sweep.dir=$OUT/clean_kd > $OUT/clean_kd.log 2>&1 &
python -m fast_ast.train -m $S kd=logits kd.path=$OUT/views.safetensors kd.lambda=0.5 hydra.sweep.dir=$OUT/consistent_kd > $OUT/consistent_kd.log 2>&1 &
wait
# 5. the framework's report per condition (summary.md, pareto.png) and the mean ± std table over seeds
for c in no_kd clean_kd consistent_kd; do python -m fast_ast.report $OUT/$c > /dev/null; done
python experiments/kd_consistent/table.py $OUT
