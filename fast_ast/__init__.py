"""fast_ast: fast audio transformers (AST, Token Merging, knowledge distillation)."""
