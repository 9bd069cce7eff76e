"""Faults and hostile input (issue 18): odd rates, damaged checkpoints, a second writer, bad config values."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

from fast_ast.callbacks.checkpoint_io import atomic_torch_save
from fast_ast.config_checks import check_batch_sizes, check_int
from fast_ast.data.resample import resample
from fast_ast.report import markdown_cell
from fast_ast.run_dir import RunDirInUseError, RunDirLock, choose_resume, remove_stale_temps, write_failure


@pytest.mark.parametrize("orig,new", [(44100, 16000), (22050, 16000), (4411, 1600), (8000, 16000)])
def test_resampler_matches_torchaudio_where_torchaudio_fits(orig, new):
    x = torch.randn(orig, dtype=torch.float64)
    expected = AF.resample(x, orig, new)  # float64 kernel: the reference
    got = resample(x.float(), orig, new)
    assert got.shape == expected.shape
    assert (got.double() - expected).abs().max() < 1e-5 * x.abs().max()


def test_resampler_window_is_the_slice_of_the_whole():
    x = torch.randn(44101)
    whole = resample(x, 44101, 16000)
    assert torch.equal(resample(x, 44101, 16000, start=777, count=3000), whole[777:3777])


@pytest.mark.parametrize("rate", [44101, 22051, 7999])
def test_odd_rates_resample_under_a_memory_cap(tmp_path, rate):
    """0.1 s at an odd rate: torchaudio's kernel is new x orig floats (2.8 GB for 44101); here a 1 GB cap
    above the interpreter's footprint must hold, and a 1 kHz tone stays a 1 kHz tone."""
    path = tmp_path / "odd.wav"
    t = np.arange(int(0.1 * rate)) / rate
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), rate)
    script = textwrap.dedent(f"""
        import resource, numpy as np
        from fast_ast.data.audio_io import read_audio
        size = int(open('/proc/self/statm').read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (size + 2**30, size + 2**30))
        w = read_audio({str(path)!r}, 16000)
        spectrum = np.abs(np.fft.rfft(w.numpy()))
        print(w.shape[0], np.fft.rfftfreq(w.shape[0], 1 / 16000)[spectrum.argmax()])
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    samples, peak = done.stdout.split()
    assert int(samples) == -(-int(0.1 * rate) * 16000 // rate) and abs(float(peak) - 1000) <= 10


def full_checkpoint(epoch: int) -> dict:
    return {"epoch": epoch, "state_dict": {"w": torch.full((4,), float(epoch))}, "optimizer_states": [], "loops": {}}


def test_resume_falls_back_from_truncated_and_empty_last(tmp_path, caplog):
    checkpoints = tmp_path / "checkpoints"
    atomic_torch_save(full_checkpoint(1), checkpoints / "last.ckpt")
    atomic_torch_save(full_checkpoint(2), checkpoints / "last.ckpt")  # the first is kept as last.prev.ckpt
    assert torch.load(checkpoints / "last.prev.ckpt", weights_only=True)["epoch"] == 1
    data = (checkpoints / "last.ckpt").read_bytes()
    (checkpoints / "last.ckpt").write_bytes(data[: len(data) // 2])
    assert choose_resume(checkpoints) == str(checkpoints / "last.prev.ckpt")
    assert "last.ckpt" in caplog.text
    (checkpoints / "last.ckpt").write_bytes(b"")
    (checkpoints / "last.prev.ckpt").write_bytes(b"")
    assert choose_resume(checkpoints) is None and "starting fresh" in caplog.text


def test_a_failed_write_leaves_the_old_checkpoint_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "last.ckpt"
    atomic_torch_save(full_checkpoint(1), target)

    def full_disk(obj, file):
        file.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError):
        atomic_torch_save(full_checkpoint(2), target)
    monkeypatch.undo()
    assert torch.load(target, weights_only=True)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
    (tmp_path / ".last.ckpt.123.tmp").write_bytes(b"x")  # left by a killed writer
    assert [p.name for p in remove_stale_temps(tmp_path)] == [".last.ckpt.123.tmp"]


def test_second_writer_is_refused_naming_the_holder(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from fast_ast.run_dir import RunDirLock; import time; l = RunDirLock({str(tmp_path)!r}).acquire(); print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirInUseError, match=f"pid {holder.pid}"):
            RunDirLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    RunDirLock(tmp_path).acquire().release()  # the dead holder's lock is gone


def test_failure_is_recorded_next_to_an_unwritable_run_dir(tmp_path, monkeypatch, capsys):
    import fast_ast.run_dir as run_dir

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(run_dir, "write_results", no_space)
    where = write_failure(tmp_path / "3", {"status": "failed", "error": "ValueError: boom"}, ValueError("boom"))
    assert where == tmp_path / "3.failed.json"
    assert "could not be written" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["32", 1.5, "abc", 0, -1, True, []])
def test_batch_size_types_are_checked(value):
    with pytest.raises(ValueError, match=r"data\.batch_size"):
        check_batch_sizes("data.batch_size", value)


def test_valid_batch_sizes_and_ints():
    assert check_batch_sizes("data.batch_size", 32) == [32]
    assert check_batch_sizes("data.batch_size", [8, 16]) == [8, 16]
    with pytest.raises(ValueError, match="trainer.max_epochs"):
        check_int("trainer.max_epochs", 0, 1)


def test_multiline_error_stays_in_its_cell():
    assert markdown_cell("a | b\nline two\r\nthree") == "a \\| b<br>line two<br>three"
