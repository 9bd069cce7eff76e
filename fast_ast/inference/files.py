"""The input files of fast_ast.predict: one file, or every file under a directory."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def list_inputs(inputs: str | Path, extensions: Sequence[str] | None = None) -> list[Path]:
    """`inputs` itself when it is a file; else the non-hidden files below it, sorted, recursively.

    extensions (e.g. ["wav", "flac"], case-insensitive) keeps only files ending so; None keeps all of them
    (the ones that are not audio are then reported as unreadable, with the reason).
    """
    root = Path(inputs).expanduser()
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"inputs={inputs}: no such file or directory")
    suffixes = None if extensions is None else {"." + str(e).lower().lstrip(".") for e in extensions}
    files = [
        path
        for path in sorted(root.rglob("*"))
        if (path.is_file() or (path.is_symlink() and not path.exists()))  # a broken link is listed as unreadable
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
        and (suffixes is None or path.suffix.lower() in suffixes)
    ]
    if not files:
        wanted = "" if suffixes is None else f" with extension {sorted(suffixes)}"
        raise FileNotFoundError(f"inputs={inputs}: no files{wanted} in this directory")
    return files
