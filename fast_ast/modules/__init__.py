"""Lightning modules: AudioClassifier (AST / ToMe-AST) and the knowledge-distillation student."""
