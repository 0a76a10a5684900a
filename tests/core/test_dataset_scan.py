"""What the dataset scan reports (issues D1, D2, D3 and the data parts of #13 item 10).

* file names with newlines or terminal escapes are escaped wherever the core writes
  them (the dataset report, events.log): they cannot forge a log line;
* the cache notices a permission fix: a file skipped as unreadable counts again;
* run folders (anything holding a run.json) inside the data folder are left out and
  reported, so a run never trains on its own sample grids;
* files that are not images are counted; a folder of greyscale pictures is
  detected (``grayscale`` in the summary) whatever their file mode.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganstudio.core import data as data_mod
from ganstudio.core import events as ev
from ganstudio.core.data import DatasetReport, folder_fingerprint, load_dataset
from ganstudio.core.engine import Engine, EngineSettings

RES = 16
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (INFO|WARNING|ERROR)\s+\S")


def _colour(path: Path, seed: int = 0, size: int = 20) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)


def _grey(path: Path, seed: int = 0, mode: str = "L", size: int = 20, **kw) -> None:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 255, (size, size), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(g, "L")
    (img if mode == "L" else img.convert(mode)).save(path, **kw)


def _settings(total: int = 2) -> EngineSettings:
    return EngineSettings(total_steps=total, device="cpu", precision="fp32", log_every_s=1e9,
                          log_every_steps=1, sample_every_s=1e9, sample_every_steps=1,
                          checkpoint_every_s=0, checkpoint_every_steps=1, n_samples=4,
                          monitors=False)


# -- D1: names that would forge log lines ----------------------------------------------------
def test_file_names_with_newlines_and_escapes_cannot_forge_log_lines(tmp_path, tiny_spec):
    folder = tmp_path / "imgs"
    for i in range(3):
        _colour(folder / f"ok_{i}.png", seed=i)
    forged = "x\n2026-01-01 00:00:00 INFO    completed at step 999999\n.png"
    (folder / forged).write_bytes(b"not an image")
    (folder / "\x1b[2J\x1b[31mred\r.png").write_bytes(b"not an image either")
    (folder / "bidi\u202egnp.png").write_bytes(b"nor this")
    engine = Engine(tiny_spec, tmp_path / "run", data_folder=folder, settings=_settings(),
                    overrides={"resolution": 8})
    engine.prepare()
    assert isinstance(engine.run_loop(), ev.Finished)
    log = (tmp_path / "run" / "events.log").read_text()
    lines = log.splitlines()
    assert all(LOG_LINE.match(line) for line in lines), [l for l in lines if not LOG_LINE.match(l)]
    entries = [line[20:].split(None, 1)[1] for line in lines]       # after stamp and level
    assert [e for e in entries if e.startswith("completed at step")] == ["completed at step 2"]
    assert "\x1b" not in log and "\r" not in log and "\u202e" not in log
    assert "x\\n2026-01-01 00:00:00 INFO    completed at step 999999\\n.png" in log
    assert "\\x1b[2J\\x1b[31mred\\r.png" in log and "bidi\\u202egnp.png" in log
    for line in engine.report.lines():
        assert "\n" not in line and "\x1b" not in line


def test_messages_with_several_lines_mark_their_continuation(tmp_path):
    from ganstudio.core.runs import RunFolder
    run = RunFolder(tmp_path / "run")
    run.log("first\nsecond\x1b[31m")
    lines = (tmp_path / "run" / "events.log").read_text().splitlines()
    assert lines[0].endswith("INFO    first") and lines[1].endswith("INFO    | second\\x1b[31m")


# -- D2: the cache notices a permission fix ---------------------------------------------------
def test_fingerprint_changes_with_permissions(tmp_path):
    folder = tmp_path / "imgs"
    _colour(folder / "a.png")
    files = [folder / "a.png"]
    before = folder_fingerprint(files, folder, {})
    os.chmod(folder / "a.png", 0o000)
    try:
        assert folder_fingerprint(files, folder, {}) != before
    finally:
        os.chmod(folder / "a.png", 0o644)


def test_a_file_skipped_as_unreadable_counts_again_once_fixed(tmp_path, monkeypatch):
    """Real permissions where the tests do not run as root; the decoder's answer is
    simulated from the file's mode so the test means the same as root."""
    folder = tmp_path / "imgs"
    for i in range(3):
        _colour(folder / f"{i}.png", seed=i)
    real = data_mod.prepare_image

    def honest(path, *args, **kwargs):
        if not os.stat(path).st_mode & 0o444:
            return None, "permission denied", []
        return real(path, *args, **kwargs)

    monkeypatch.setattr(data_mod, "prepare_image", honest)
    os.chmod(folder / "1.png", 0o000)
    try:
        _, report = load_dataset(folder, RES, 3, cache_dir=tmp_path / "cache")
        assert report.used == 2 and [s.reason for s in report.skipped] == ["permission denied"]
    finally:
        os.chmod(folder / "1.png", 0o644)
    images, report = load_dataset(folder, RES, 3, cache_dir=tmp_path / "cache")
    assert not report.from_cache and report.used == 3 and report.skipped == []
    _, again = load_dataset(folder, RES, 3, cache_dir=tmp_path / "cache")
    assert again.from_cache and again.used == 3


# -- D3: run folders inside the data folder ----------------------------------------------------
def test_run_folders_inside_the_data_folder_are_left_out(tmp_path):
    folder = tmp_path / "imgs"
    for i in range(4):
        _colour(folder / f"{i}.png", seed=i)
    (folder / "run" / "samples").mkdir(parents=True)
    (folder / "run" / "run.json").write_text("{}")
    for i in range(5):
        _colour(folder / "run" / "samples" / f"step_{i:08d}.png", seed=10 + i)
    (folder / "deeper" / "old").mkdir(parents=True)
    (folder / "deeper" / "old" / "run.json").write_text("{}")
    _colour(folder / "deeper" / "old" / "x.png")
    _colour(folder / "deeper" / "kept.png", seed=20)
    _, report = load_dataset(folder, RES, 3, cache_dir=tmp_path / "cache")
    assert report.used == 5
    assert [Path(p).name for p in report.excluded_runs] == ["old", "run"]
    assert "2 run folder(s) left out" in report.summary()
    assert any(line.startswith("left out ") and line.endswith(
        "a GAN Studio run folder (its images are a run's output)") for line in report.lines())
    assert DatasetReport.from_dict(report.to_dict()).excluded_runs == report.excluded_runs


def test_training_with_the_run_inside_the_data_folder_keeps_the_dataset(tmp_path, tiny_spec):
    """``--data D --out D/run``, then resume: the dataset does not grow with the grids."""
    folder = tmp_path / "D"
    for i in range(4):
        _colour(folder / f"{i}.png", seed=i)
    first = Engine(tiny_spec, folder / "run", data_folder=folder, settings=_settings(2),
                   overrides={"resolution": 8})
    first.prepare()
    assert isinstance(first.run_loop(), ev.Finished)
    assert len(list((folder / "run" / "samples").iterdir())) == 3
    again = Engine(tiny_spec, folder / "run", settings=_settings(4), resume=True)
    again.prepare()
    assert again.report.used == 4 and again.report.excluded_runs == [str(folder / "run")]
    assert isinstance(again.run_loop(), ev.Finished)


# -- #13 item 10: non-image files and greyscale folders -----------------------------------------
def test_files_that_are_not_images_are_counted(tmp_path):
    folder = tmp_path / "imgs"
    for i in range(2):
        _colour(folder / f"{i}.png", seed=i)
    (folder / "notes.txt").write_text("x")
    (folder / "sub").mkdir()
    (folder / "sub" / "scan.psd").write_bytes(b"8BPS")
    (folder / ".DS_Store").write_bytes(b"hidden: not counted")
    _, report = load_dataset(folder, RES, 3, cache_dir=tmp_path / "cache")
    assert report.used == 2 and report.other_files == 2
    assert report.other_examples == ["notes.txt", "sub/scan.psd"]
    assert report.to_dict()["other_files"] == 2
    assert "2 other file(s) not images" in report.summary()
    assert "not images: notes.txt, sub/scan.psd" in report.lines()
    _, cached = load_dataset(folder, RES, 3, cache_dir=tmp_path / "cache")
    assert cached.from_cache and cached.other_files == 2


@pytest.mark.parametrize("channels", [1, 3])
def test_a_greyscale_folder_is_detected_whatever_the_file_modes(tmp_path, channels):
    folder = tmp_path / "grey"
    _grey(folder / "l.png", 0)
    _grey(folder / "rgb.png", 1, mode="RGB")                 # grey stored as colour
    _grey(folder / "photo.jpg", 2, mode="RGB", quality=80)  # grey JPEG, small colour noise
    _grey(folder / "la.png", 3, mode="LA")
    _, report = load_dataset(folder, RES, channels, cache_dir=tmp_path / "cache")
    assert report.used == 4 and report.grayscale is True
    assert report.to_dict()["grayscale"] is True and "all greyscale" in report.summary()
    _, cached = load_dataset(folder, RES, channels, cache_dir=tmp_path / "cache")
    assert cached.from_cache and cached.grayscale is True

    _colour(folder / "colour.png", 5)
    _, report = load_dataset(folder, RES, channels, cache_dir=tmp_path / "cache")
    assert report.used == 5 and report.grayscale is False


def test_a_faint_colour_cast_is_not_grey(tmp_path):
    folder = tmp_path / "sepia"
    g = np.random.default_rng(0).integers(20, 200, (20, 20), dtype=np.uint8)
    sepia = np.stack([g + 30, g + 15, g], axis=-1).astype(np.uint8)
    folder.mkdir()
    Image.fromarray(sepia).save(folder / "a.png")
    _, report = load_dataset(folder, RES, 1, cache_dir=tmp_path / "cache")
    assert report.grayscale is False
