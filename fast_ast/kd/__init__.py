"""Knowledge distillation: losses (losses.py), teacher logits files (store.py), teacher models
(teachers.py) and the importer for logits produced elsewhere (importer.py). The student LightningModule
is fast_ast.modules.kd_student.KDStudent; `python -m fast_ast.teacher` writes logits files."""
