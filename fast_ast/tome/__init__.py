"""Token Merging (Bolya et al., ICLR 2023) inside the AST: `apply_tome(backbone, **cfg.tome)`."""

from fast_ast.tome.apply import TokenMerging, apply_tome

__all__ = ["TokenMerging", "apply_tome"]
