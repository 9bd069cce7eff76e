"""Import teacher logits produced elsewhere (e.g. EfficientAT's PaSST-ensemble predictions) for kd=logits.

    python -m fast_ast.kd.importer --logits preds.npy --index fname_to_index.json --classes classes.csv \
        --ids stem --teacher "PaSST ensemble" --output teacher_logits.safetensors

Inputs:
    --logits   .npy [N, C] teacher logits (before sigmoid/softmax); read with allow_pickle=False
    --index    which row belongs to which file: a JSON object {"<filename>": row} or a CSV with a header
               naming --key-column (default filename) and --row-column (default index)
    --classes  the teacher's class list in column order: .txt (one name per line), .json (a list), or a
               CSV with a header naming --class-column (default display_name, as AudioSet's class_labels_indices.csv)
    --ids      how a filename becomes the corpus's clip id (batch["id"]): key (unchanged), key_stem (the
               relative path without its extension: Speech Commands' word/speaker_nohash_n, folder and
               events corpora), name (without directories) or stem (without directories and extension:
               ESC-50, AudioSet)
Rows that no filename points to are left out; every filename must point to a row that exists. Two filenames
giving the same id is an error naming them and the rules that would keep them apart; a training run whose
clip ids are not in the file (kd.missing=error) names the rule that would have matched them (id_rule_hint).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from fast_ast.kd.store import TeacherLogits, quoted, save_logits

ID_RULES = ("key", "key_stem", "name", "stem")
RULE_MEANING = {
    "key": "the filename unchanged",
    "key_stem": "the relative path without extension",
    "name": "without directories",
    "stem": "without directories and extension",
}
# the clip ids of this project's corpora (batch["id"]) and the rule that produces them from relative paths
CORPUS_IDS = "Speech Commands, folder and events corpora: key_stem (word/speaker_nohash_n); ESC-50 and AudioSet: stem"


def clip_id(filename: str, rule: str) -> str:
    path = PurePosixPath(filename.replace("\\", "/"))
    if rule == "key_stem":
        return filename if not path.suffix else filename[: -len(path.suffix)]
    return {"key": filename, "name": path.name, "stem": path.stem}[rule]


def repeated_ids(keys: list[str], rule: str) -> dict[str, list[str]]:
    """id -> the keys that give it under `rule`, for ids given by more than one key."""
    by_id: dict[str, list[str]] = {}
    for key in keys:
        by_id.setdefault(clip_id(key, rule), []).append(key)
    return {clip: group for clip, group in by_id.items() if len(group) > 1}


def check_unique_ids(keys: list[str], rule: str, index: Path) -> None:
    """Raises ValueError when two keys give one id, naming them and the rules under which they stay apart."""
    repeats = repeated_ids(keys, rule)
    if not repeats:
        return
    clip, group = next(iter(repeats.items()))
    unique = [other for other in ID_RULES if not repeated_ids(keys, other)]
    options = "; ".join(f"--ids {other} ({RULE_MEANING[other]}) gives {clip_id(group[0], other)!r}" for other in unique)
    raise ValueError(
        f"{index}: --ids {rule} gives {len(repeats)} clip id(s) to more than one file, e.g. {quoted(group)} -> {clip!r}. "
        f"Rules that keep them apart: {options or 'none'}; choose the one whose ids look like the corpus's "
        f"batch['id'] ({CORPUS_IDS})"
    )


def id_rule_hint(file_ids: list[str], corpus_ids: list[str]) -> str:
    """A sentence for a run whose corpus ids are missing from a logits file: an example of both kinds of id and,
    when applying one of ID_RULES to the file's ids would match more of the corpus's, that rule."""
    wanted = set(corpus_ids)
    matched = len(wanted & set(file_ids))
    coverage = {rule: len(wanted & {clip_id(i, rule) for i in file_ids}) for rule in ID_RULES}
    best = max(ID_RULES, key=lambda rule: coverage[rule])
    hint = f"the file's ids look like {file_ids[0]!r}, the corpus's like {corpus_ids[0]!r}"
    if coverage[best] > matched:
        hint += (
            f"; importing with python -m fast_ast.kd.importer --ids {best} ({RULE_MEANING[best]}) would match "
            f"{coverage[best]} of the {len(wanted)} clips"
        )
    return hint


def read_csv_column(path: Path, *columns: str) -> list[tuple[str, ...]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        absent = [column for column in columns if column not in (reader.fieldnames or [])]
        if absent:
            raise ValueError(f"{path}: no column {', '.join(absent)} in the header ({', '.join(reader.fieldnames or [])})")
        return [tuple(row[column] for column in columns) for row in reader]


def read_index(path: Path, key_column: str, row_column: str) -> dict[str, int]:
    """filename -> row, from a JSON object or a CSV file."""
    if path.suffix == ".json":
        mapping = json.loads(path.read_text())
        if not isinstance(mapping, dict):
            raise ValueError(f"{path}: expected a JSON object {{filename: row}}, got {type(mapping).__name__}")
        pairs = list(mapping.items())
    elif path.suffix == ".csv":
        pairs = read_csv_column(path, key_column, row_column)
    else:
        raise ValueError(f"index {path} must be a .json or .csv file")
    index = {}
    for key, row in pairs:
        try:
            index[str(key)] = int(row)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}: row of {key!r} is not an integer: {row!r}") from error
    return index


def read_classes(path: Path, class_column: str) -> list[str]:
    if path.suffix == ".txt":
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if path.suffix == ".json":
        names = json.loads(path.read_text())
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise ValueError(f"{path}: expected a JSON list of class names")
        return names
    if path.suffix == ".csv":
        return [row[0] for row in read_csv_column(path, class_column)]
    raise ValueError(f"classes {path} must be a .txt, .json or .csv file")


def import_logits(
    logits: str | Path,
    index: str | Path,
    classes: str | Path,
    output: str | Path,
    ids: str = "key",
    teacher: str | None = None,
    key_column: str = "filename",
    row_column: str = "index",
    class_column: str = "display_name",
) -> Path:
    """Writes `output` (.safetensors or .npy + .json) from foreign logits; returns its path."""
    logits, index, classes = Path(logits), Path(index), Path(classes)
    for path in (logits, index, classes):
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist")
    if ids not in ID_RULES:
        raise ValueError(f"ids must be one of {ID_RULES}, got {ids!r}")
    matrix = np.load(logits, allow_pickle=False)
    if matrix.ndim != 2:
        raise ValueError(f"{logits}: expected [clips, classes] logits, got shape {matrix.shape}")
    rows = read_index(index, key_column, row_column)
    outside = [f"{key} -> {row}" for key, row in rows.items() if not 0 <= row < matrix.shape[0]]
    if outside:
        raise ValueError(f"{index}: rows outside the {matrix.shape[0]} rows of {logits}: {quoted(outside)}")
    names = read_classes(classes, class_column)
    if len(names) != matrix.shape[1]:
        raise ValueError(f"{classes} lists {len(names)} classes, {logits} has {matrix.shape[1]} logits per clip")
    keys = list(rows)
    check_unique_ids(keys, ids, index)
    selected = torch.from_numpy(matrix[[rows[key] for key in keys]].astype(np.float32))
    metadata = {
        "teacher": teacher or f"imported {logits.name}",
        "teacher_format": "imported",
        "imported_from": json.dumps({"logits": str(logits.resolve()), "index": str(index.resolve()), "ids": ids}),
    }
    store = TeacherLogits(selected, [clip_id(key, ids) for key in keys], names, metadata)
    return save_logits(output, store)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fast_ast.kd.importer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--logits", required=True, help=".npy [N, C] teacher logits")
    parser.add_argument("--index", required=True, help="filename -> row: .json object or .csv")
    parser.add_argument("--classes", required=True, help="class names in column order: .txt, .json or .csv")
    parser.add_argument("--output", required=True, help=".safetensors or .npy (+ .json index) to write")
    parser.add_argument("--ids", default="key", choices=ID_RULES, help="filename -> clip id rule (default key)")
    parser.add_argument("--teacher", default=None, help="the teacher's name, kept in the metadata")
    parser.add_argument("--key-column", default="filename")
    parser.add_argument("--row-column", default="index")
    parser.add_argument("--class-column", default="display_name")
    args = parser.parse_args(argv)
    path = import_logits(
        args.logits, args.index, args.classes, args.output, args.ids, args.teacher,
        args.key_column, args.row_column, args.class_column,
    )
    print(path)


if __name__ == "__main__":
    main()
