"""Label maps: AST-style class_labels_indices.csv files (index, mid, display_name).

The AudioSet (527 classes), ESC-50 (50) and Speech Commands v2 (35) maps of the AST recipes ship in
fast_ast/data/labels/; `data.label_csv` points a corpus at another file of the same format.
`label_rows(pairs)` builds a map from (index, name) pairs found elsewhere (ESC-50's data.label_csv=from_meta).
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

LABELS_DIR = Path(__file__).resolve().parent / "labels"
COLUMNS = ("index", "mid", "display_name")


@dataclass(frozen=True)
class LabelRow:
    index: int
    mid: str
    display_name: str


def packaged_label_csv(corpus: str) -> Path:
    """The shipped map of `corpus` ('audioset', 'esc50', 'speechcommands')."""
    path = LABELS_DIR / f"{corpus}_class_labels_indices.csv"
    if not path.is_file():
        known = sorted(p.name.split("_class_labels")[0] for p in LABELS_DIR.glob("*_class_labels_indices.csv"))
        raise FileNotFoundError(f"no packaged label map for {corpus!r}; packaged: {known}")
    return path


def read_label_csv(path: str | Path) -> list[LabelRow]:
    """Rows in index order; the indices must be exactly 0..n-1 and mids/names unique."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label map {path} does not exist")
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(f"{path}: header must be {','.join(COLUMNS)}, got {reader.fieldnames}")
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                rows.append(LabelRow(int(row["index"]), row["mid"].strip(), row["display_name"].strip()))
            except (TypeError, ValueError) as error:
                raise ValueError(f"{path} line {line}: bad row {row} ({error})") from error
    if [row.index for row in rows] != list(range(len(rows))):
        raise ValueError(f"{path}: indices must run 0..{len(rows) - 1} in order")
    for column in ("mid", "display_name"):
        duplicates = sorted(v for v, n in Counter(getattr(row, column) for row in rows).items() if n > 1)
        if duplicates:
            raise ValueError(f"{path}: duplicate {column} values {duplicates}")
    return rows


def label_rows(pairs: list[tuple[int, str]], where: str) -> list[LabelRow]:
    """A label map from (index, name) pairs (repeats allowed): each index one name, each name one index,
    indices exactly 0..n-1. The mid column repeats the name (there is none to take)."""
    names: dict[int, str] = {}
    for index, name in pairs:
        if names.setdefault(index, name) != name:
            raise ValueError(f"{where}: index {index} is both {names[index]!r} and {name!r}")
    rows = [LabelRow(index, names[index], names[index]) for index in sorted(names)]
    absent = sorted(set(range(len(rows))) - set(names))
    if absent or any(index < 0 for index in names):
        raise ValueError(f"{where}: class indices must run 0..{len(rows) - 1}; found {sorted(names)}")
    duplicates = sorted(name for name, n in Counter(names.values()).items() if n > 1)
    if duplicates:
        raise ValueError(f"{where}: names with more than one index: {duplicates}")
    return rows
