"""Token reduction inside ViT-family backbones (the `tome` config group): Token Merging, attention
pruning, temporal merging and structured patchout. `apply_tome(backbone, **cfg.tome)`."""

from fast_ast.tome.apply import METHODS, TokenReduction, apply_tome, install_reduction, plan_reduction

__all__ = ["METHODS", "TokenReduction", "apply_tome", "install_reduction", "plan_reduction"]
