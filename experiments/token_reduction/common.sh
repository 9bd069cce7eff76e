# Settings shared by the study's commands: built-in corpus at 5 s clips, the mini AST (stride 16):
# 128 bins x 500 frames -> 8 x 31 patches + 2 = 250 tokens.
DATA="data=synthetic data.clip_seconds=5.0 data.features.target_length=500 data.train_size=1200 data.val_size=200 data.test_size=200"
MODEL="model/backbone=mini"
QUIET="logger=csv trainer.enable_progress_bar=false trainer.enable_model_summary=false"
