"""`data=folder`: your own clips, one subfolder per class.

    <root>/train/<class>/<any name>        every non-hidden file below a class folder is a clip
    <root>/validation/<class>/...
    <root>/test/<class>/...                optional; without it the test split is the validation split

A clip's id is its path below the split folder, extension included (dog/bark.flac and dog/bark.wav are
two clips).

The classes are the sorted folder names under train/ (saved in the checkpoint as the model's
class_names, so prediction uses the same map). A class folder under validation/ or test/ that train/
lacks is an error naming it; a file that is not audio is reported like any bad file.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fast_ast.data.clip_dataset import Clip
from fast_ast.data.file_corpus import FileCorpusDataModule
from fast_ast.data.validation import check_known_labels

log = logging.getLogger(__name__)


def class_folders(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))


def clip_files(folder: Path) -> list[Path]:
    """Files under `folder` (recursively), skipping hidden files and folders, sorted. A symbolic link to a
    missing file is kept (the file check then lists it as missing)."""
    return sorted(
        p
        for p in folder.rglob("*")
        if (p.is_file() or (p.is_symlink() and not p.exists()))
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


class FolderDataModule(FileCorpusDataModule):
    def __init__(self, train_dir: str = "train", val_dir: str = "validation", test_dir: str = "test", **kwargs):
        super().__init__(**kwargs)
        root = self.require_root()
        self.split_dirs = {"train": root / train_dir, "val": root / val_dir, "test": root / test_dir}
        for split in ("train", "val"):
            if not self.split_dirs[split].is_dir():
                raise FileNotFoundError(f"{self.split_dirs[split]} does not exist (expected <root>/{train_dir}/<class>/... and <root>/{val_dir}/<class>/...)")
        if not self.split_dirs["test"].is_dir():
            log.info("%s does not exist: the test split is the validation split", self.split_dirs["test"])
            self.split_dirs["test"] = self.split_dirs["val"]
        self.class_names = class_folders(self.split_dirs["train"])
        if not self.class_names:
            raise ValueError(f"{self.split_dirs['train']} has no class folders")
        empty = [name for name in self.class_names if not clip_files(self.split_dirs["train"] / name)]
        if empty:
            raise ValueError(f"{self.split_dirs['train']}: class folders without files: {empty}")
        self.multilabel = False

    def list_clips(self, split: str) -> list[Clip]:
        directory = self.split_dirs[split]
        classes = class_folders(directory)
        check_known_labels(classes, self.class_names, f"{directory} (class folders not in {self.split_dirs['train']})")
        return [
            Clip(str(path), self.class_names.index(name), path.relative_to(directory).as_posix())
            for name in classes
            for path in clip_files(directory / name)
        ]
