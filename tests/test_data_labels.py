"""The packaged label maps (AST's class_labels_indices.csv files) and their reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from fast_ast.data.labels import packaged_label_csv, read_label_csv

SHARED = Path("/work/shared/data")  # the reference copies of the real files, where this machine has them
SIZES = {"audioset": 527, "esc50": 50, "speechcommands": 35}
SPEECH_COMMANDS_V2 = (
    "backward bed bird cat dog down eight five follow forward four go happy house learn left marvin nine no off on one "
    "right seven sheila six stop three tree two up visual wow yes zero"
).split()


@pytest.mark.parametrize("corpus", sorted(SIZES))
def test_packaged_maps_match_the_real_files(corpus):
    rows = read_label_csv(packaged_label_csv(corpus))
    assert len(rows) == SIZES[corpus]
    reference = SHARED / f"{corpus}_class_labels_indices.csv"
    if not reference.is_file():
        pytest.skip(f"{reference} is not on this machine")
    assert rows == read_label_csv(reference)


def test_known_entries():
    audioset = read_label_csv(packaged_label_csv("audioset"))
    assert (audioset[0].mid, audioset[0].display_name) == ("/m/09x0r", "Speech")
    assert audioset[1].display_name == "Male speech, man speaking"  # quoted field with a comma
    esc50 = [row.display_name for row in read_label_csv(packaged_label_csv("esc50"))]
    assert esc50[0] == "dog" and esc50[10] == "rain" and esc50[49] == "hand_saw"
    words = [row.display_name for row in read_label_csv(packaged_label_csv("speechcommands"))]
    assert sorted(words) == SPEECH_COMMANDS_V2


def test_reader_rejects_malformed_maps(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("index,name\n0,a\n")
    with pytest.raises(ValueError, match="header must be index,mid,display_name"):
        read_label_csv(path)
    path.write_text('index,mid,display_name\n0,/m/a,"A"\n2,/m/b,"B"\n')
    with pytest.raises(ValueError, match="indices must run 0..1"):
        read_label_csv(path)
    path.write_text('index,mid,display_name\n0,/m/a,"A"\n1,/m/a,"B"\n')
    with pytest.raises(ValueError, match=r"duplicate mid values \['/m/a'\]"):
        read_label_csv(path)
    with pytest.raises(FileNotFoundError, match="no packaged label map for 'vggsound'"):
        packaged_label_csv("vggsound")
