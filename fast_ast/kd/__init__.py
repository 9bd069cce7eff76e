"""Knowledge distillation: losses (losses.py), the loss object a classifier is given (distillation.py),
teacher logits files (store.py), stored teacher views (view_store.py), teacher models (teachers.py) and
the importer for logits produced elsewhere (importer.py). `python -m fast_ast.teacher` writes the files."""
