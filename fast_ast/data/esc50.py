"""`data=esc50`: ESC-50 (Piczak 2015) in its release layout — no conversion.

    <root>/audio/<fold>-<src_file>-<take>-<target>.wav   2000 clips, 5 s, 44.1 kHz mono
    <root>/meta/esc50.csv   filename,fold,target,category,esc10,src_file,take

`fold` (1..5) is held out as the test split; validation is the same fold (the AST recipe's 5-fold
cross-validation) unless `val_fold` names another one, which then leaves training too.
`subset=esc10` keeps the ESC-10 rows (esc10 == True) and renumbers their classes 0..9 in target order.
Class names come from the label map (ESC-50's 50 categories by target); every row's category must agree.
A corpus in this layout with other categories: `data.label_csv=<file>` (index,mid,display_name, one row per
target) or `data.label_csv=from_meta`, the map the meta file itself gives (target -> category).
"""

from __future__ import annotations

import csv
from pathlib import Path

from fast_ast.data.clip_dataset import Clip
from fast_ast.data.file_corpus import FileCorpusDataModule
from fast_ast.data.labels import LabelRow, label_rows, packaged_label_csv, read_label_csv
from fast_ast.data.validation import UnknownLabelsError, check_known_labels

META_COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
FOLDS = (1, 2, 3, 4, 5)
SUBSETS = ("esc50", "esc10")
FROM_META = "from_meta"


def read_esc50_meta(path: Path) -> list[dict]:
    """Rows of meta/esc50.csv with fold/target as int and esc10 as bool; errors name the file and line."""
    if not path.is_file():
        raise FileNotFoundError(f"ESC-50 metadata {path} does not exist (expected the release layout: audio/, meta/esc50.csv)")
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        missing = [c for c in META_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path}: missing columns {missing} (header {reader.fieldnames})")
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                row["fold"], row["target"] = int(row["fold"]), int(row["target"])
            except ValueError as error:
                raise ValueError(f"{path} line {line}: fold and target must be integers ({error})") from error
            if row["esc10"] not in ("True", "False"):
                raise ValueError(f"{path} line {line}: esc10 must be True or False, got {row['esc10']!r}")
            row["esc10"] = row["esc10"] == "True"
            row["line"] = line
            rows.append(row)
    return rows


class ESC50DataModule(FileCorpusDataModule):
    def __init__(self, fold: int = 1, val_fold: int | None = None, subset: str = "esc50", label_csv: str | None = None, **kwargs):
        super().__init__(**kwargs)
        if fold not in FOLDS or val_fold not in (None, *FOLDS):
            raise ValueError(f"data.fold and data.val_fold must be in {FOLDS} (val_fold may be null), got {fold}, {val_fold}")
        if subset not in SUBSETS:
            raise ValueError(f"data.subset must be one of {SUBSETS}, got {subset!r}")
        self.fold, self.val_fold, self.subset = fold, val_fold, subset
        root = self.require_root()
        self.meta_path = root / "meta" / "esc50.csv"
        self.rows = read_esc50_meta(self.meta_path)
        names = [row.display_name for row in self.label_map(label_csv)]
        try:
            check_known_labels((row["category"] for row in self.rows), names, str(self.meta_path))
        except UnknownLabelsError as error:
            if label_csv is not None:
                raise
            raise UnknownLabelsError(
                f"{error}. They are not ESC-50 categories: for a corpus in this layout with its own categories set "
                f"data.label_csv={FROM_META} (the map is read from {self.meta_path}: target -> category) or "
                "data.label_csv=<file> (a CSV index,mid,display_name with one row per target, in target order)"
            ) from error
        for row in self.rows:
            if not 0 <= row["target"] < len(names) or names[row["target"]] != row["category"]:
                raise ValueError(
                    f"{self.meta_path} line {row['line']}: target {row['target']} does not match category {row['category']!r} "
                    f"(the label map has {names.index(row['category'])} for it)"
                )
        if subset == "esc10":
            self.rows = [row for row in self.rows if row["esc10"]]
        targets = sorted({row["target"] for row in self.rows})
        self.class_index = {target: index for index, target in enumerate(targets)}
        self.class_names = [names[target] for target in targets]
        self.multilabel = False
        present = {row["fold"] for row in self.rows}
        for key, value in (("fold", fold), ("val_fold", val_fold)):
            if value is not None and value not in present:
                raise ValueError(f"data.{key}={value}: {self.meta_path} has no {subset} clips in that fold (folds {sorted(present)})")

    def label_map(self, label_csv: str | None) -> list[LabelRow]:
        """The packaged ESC-50 map, a label CSV, or (from_meta) the targets and categories of the meta file."""
        if label_csv == FROM_META:
            return label_rows([(row["target"], row["category"]) for row in self.rows], f"{self.meta_path} (data.label_csv={FROM_META})")
        return read_label_csv(label_csv or packaged_label_csv("esc50"))

    def split_folds(self, split: str) -> set[int]:
        held_out = self.val_fold if self.val_fold is not None else self.fold
        if split == "test":
            return {self.fold}
        if split == "val":
            return {held_out}
        return set(FOLDS) - {self.fold, held_out}

    def list_clips(self, split: str) -> list[Clip]:
        folds = self.split_folds(split)
        audio = self.root / "audio"
        return [
            Clip(str(audio / row["filename"]), self.class_index[row["target"]], Path(row["filename"]).stem)
            for row in self.rows
            if row["fold"] in folds
        ]
