"""A tampered run folder cannot make GAN Studio write outside it (issue F1).

Links are planted at every path a resumed run writes: the final names, the
temporary names of earlier versions (``run.json.tmp``, ``metrics.jsonl.tmp``,
``samples/step_N.png.tmp``, ``metrics.csv.tmp``, ``.ckpt_N.pt.<pid>.tmp``) and
the fresh temporary names themselves (made predictable here by fixing the
random part, which an attacker cannot do). Every victim outside the run folder
must keep its bytes and its modification time.
"""
from __future__ import annotations

import itertools
import os
import secrets
from pathlib import Path

import numpy as np
import pytest
import torch

import ganstudio_csvlog
from ganstudio.core import events as ev
from ganstudio.core import safe_files
from ganstudio.core.checkpoints import save_checkpoint
from ganstudio.core.engine import Engine, EngineSettings
from ganstudio.core.errors import UserError
from ganstudio.core.images import save_png
from ganstudio.core.runs import RunError, RunFolder
from ganstudio.core.safe_files import (UnsafeFileError, atomic_file, make_dirs, open_append,
                                       remove_stale_temporaries, write_atomic)
from ganstudio.plugins import PluginManager

IMAGES = torch.from_numpy(np.random.default_rng(5).integers(0, 255, (8, 3, 8, 8),
                                                            dtype=np.uint8))
FIXED = "0" * 16  # the "random" part of temporary names while links are planted at them


def _settings(total: int) -> EngineSettings:
    return EngineSettings(total_steps=total, device="cpu", precision="fp32",
                          log_every_s=1e9, log_every_steps=1, sample_every_s=1e9,
                          sample_every_steps=1, checkpoint_every_s=0,
                          checkpoint_every_steps=2, keep_checkpoints=2, n_samples=4,
                          monitors=False)


def _train(pm: PluginManager, run_dir: Path, total: int, **kw) -> ev.Event:
    engine = Engine(pm.get_model("tinygan"), run_dir, images=IMAGES, settings=_settings(total),
                    listeners=[pm.metrics_listener(str(run_dir))], **kw)
    engine.prepare()
    return engine.run_loop()


@pytest.fixture
def pm(tiny_plugin_module) -> PluginManager:
    ganstudio_csvlog._writers.clear()
    return PluginManager(load_entry_points=False, load_folder=False,
                         extra=[("tiny", tiny_plugin_module), ("csvlog", ganstudio_csvlog)])


class Victims:
    """Files outside the run folder; links point at them; they must never change."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir()
        self.files: dict[Path, tuple[bytes, int]] = {}

    def new(self) -> Path:
        path = self.folder / f"victim_{len(self.files)}"
        path.write_bytes(f"precious {len(self.files)}\n".encode())
        os.utime(path, ns=(10**18, 10**18))
        self.files[path] = (path.read_bytes(), path.stat().st_mtime_ns)
        return path

    def plant(self, link: Path) -> None:
        link.parent.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(link):
            link.unlink()  # the run's own file is replaced by the link
        os.symlink(self.new(), link)

    def assert_untouched(self) -> None:
        changed = [p.name for p, (data, mtime) in self.files.items()
                   if p.read_bytes() != data or p.stat().st_mtime_ns != mtime]
        assert not changed, f"written through a link: {changed}"
        assert sorted(self.folder.iterdir()) == sorted(self.files), "new files outside"


def _fixed_then_random():
    """Temporary-name tokens: the planted one first, then fresh ones, alternating, so
    every write's first try meets a planted link."""
    for i in itertools.count():
        yield FIXED if i % 2 == 0 else secrets.token_hex(8)


def test_links_at_every_temporary_name_are_never_followed(pm, tmp_path, monkeypatch):
    """The issue's reproduction (links at run.json.tmp, metrics.jsonl.tmp, metrics.csv,
    samples/step_N.png.tmp ...) and links at the fresh names themselves: the resumed run
    completes, every victim is untouched."""
    run_dir = tmp_path / "run"
    assert isinstance(_train(pm, run_dir, 4), ev.Finished)
    victims = Victims(tmp_path / "outside")
    pid = os.getpid()
    finals = ["run.json", "metrics.jsonl", "metrics.csv"]
    finals += [f"samples/step_{s:08d}.png" for s in range(4, 9)]
    finals += [f"checkpoints/ckpt_{s:08d}.pt" for s in range(4, 9)]
    for final in finals:
        folder, name = os.path.split(final)
        victims.plant(run_dir / folder / f"{name}.tmp")                      # old names
        victims.plant(run_dir / folder / f".{name}.{pid}.{FIXED}.tmp")        # fresh names
    for s in range(4, 9):
        victims.plant(run_dir / "checkpoints" / f".ckpt_{s:08d}.pt.{pid}.tmp")
    tokens = _fixed_then_random()
    monkeypatch.setattr(safe_files, "_token", lambda: next(tokens))

    done = _train(pm, run_dir, 8, resume=True)

    assert isinstance(done, ev.Finished) and done.step == 8, done
    victims.assert_untouched()
    run = RunFolder(run_dir)
    rows, _ = run.read_metrics()
    assert [r["step"] for r in rows] == list(range(1, 9))
    assert [s for s, _ in run.list_samples()] == list(range(0, 9))
    assert (run_dir / "checkpoints" / "ckpt_00000008.pt").is_file()
    csv_steps = [line.split(",")[0] for line in
                 (run_dir / "metrics.csv").read_text().splitlines()[1:]]
    assert csv_steps == [str(s) for s in range(1, 9)]
    assert "ERROR" not in (run_dir / "events.log").read_text()


@pytest.mark.parametrize("final", ["metrics.jsonl", "samples/step_00000005.png",
                                   "checkpoints/ckpt_00000006.pt"])
def test_a_link_at_a_final_name_stops_the_run_naming_the_file(pm, tmp_path, final):
    run_dir = tmp_path / "run"
    assert isinstance(_train(pm, run_dir, 4), ev.Finished)
    victims = Victims(tmp_path / "outside")
    victims.plant(run_dir / final)
    try:
        done = _train(pm, run_dir, 8, resume=True)
    except UserError as e:  # a member of the layout: refused when the run is opened
        message = str(e)
    else:                   # a file written later: the run stops when it gets there
        assert isinstance(done, ev.Failed) and done.traceback == "", done
        message = done.message
    assert f"{run_dir / final} is a symbolic link" in message
    victims.assert_untouched()


def test_plugin_file_and_log_links_are_refused_before_anything_is_written(pm, tmp_path):
    """metrics.csv (the csvlog plugin's file) or events.log as a link: the run folder is
    refused when it is opened for training, naming the link; nothing changes."""
    run_dir = tmp_path / "run"
    assert isinstance(_train(pm, run_dir, 4), ev.Finished)
    victims = Victims(tmp_path / "outside")
    for name in ("metrics.csv", "events.log"):
        victims.plant(run_dir / name)
        with pytest.raises(RunError, match=f"{name} is a symbolic link"):
            _train(pm, run_dir, 8, resume=True)
        victims.assert_untouched()
        (run_dir / name).unlink()


def test_the_csvlog_plugin_refuses_a_link_itself(tmp_path):
    """A plugin's writer meets a link on its own (e.g. planted while a run trains): the
    helper refuses it, the hook's error switches the plugin off, nothing is followed."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    victims = Victims(tmp_path / "outside")
    victims.plant(run_dir / "metrics.csv")
    writer = ganstudio_csvlog.CsvMetricsWriter(run_dir)
    with pytest.raises(UnsafeFileError, match="metrics.csv is a symbolic link"):
        writer.write(1, 0.5, {"loss": 0.25})
    victims.assert_untouched()
    (run_dir / "metrics.csv").unlink()
    victims.plant(run_dir / "metrics.csv.tmp")       # the old temporary name: passed over
    writer = ganstudio_csvlog.CsvMetricsWriter(run_dir)
    writer.write(1, 0.5, {"loss": 0.25})
    writer.close()
    assert (run_dir / "metrics.csv").read_text() == "step,time,loss\n1,0.5,0.25\n"
    victims.assert_untouched()


def test_a_hard_link_is_never_appended_to(tmp_path):
    """A hard link shares the file itself: appending would change the file elsewhere.
    The run gets a private copy first, and the append goes there."""
    run = RunFolder(tmp_path / "run")
    run.create({"model_id": "tinygan", "config": {}})
    victims = Victims(tmp_path / "outside")
    for name in ("metrics.jsonl", "events.log"):
        os.link(victims.new(), run.path / name)
    run.append_metrics([{"step": 1, "loss": 0.5}])
    run.log("a line that must not land in the victim")
    victims.assert_untouched()
    assert (run.path / "metrics.jsonl").read_text() == 'precious 0\n{"step": 1, "loss": 0.5}\n'
    assert (run.path / "metrics.jsonl").stat().st_nlink == 1
    assert (run.path / "events.log").read_text().startswith("precious 1\n")
    assert "a line that must not land in the victim" in (run.path / "events.log").read_text()


def test_a_linked_samples_folder_is_not_entered(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.create({"model_id": "tinygan", "config": {}})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.rmdir(run.samples_dir)
    os.symlink(elsewhere, run.samples_dir)
    grid = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(UnsafeFileError, match="samples is a symbolic link"):
        save_png(grid, run.sample_path(1), within=run.path)
    with pytest.raises(UnsafeFileError, match="checkpoints is a symbolic link|symbolic"):
        os.rmdir(run.checkpoints_dir)
        os.symlink(elsewhere, run.checkpoints_dir)
        save_checkpoint({"step": 1}, run.checkpoints_dir, 1)
    assert list(elsewhere.iterdir()) == []


def test_restart_moves_planted_links_as_links(pm, tmp_path):
    run_dir = tmp_path / "run"
    assert isinstance(_train(pm, run_dir, 4), ev.Finished)
    victims = Victims(tmp_path / "outside")
    victims.plant(run_dir / "notes.txt")
    done = _train(pm, run_dir, 2, restart=True)
    assert isinstance(done, ev.Finished) and done.step == 2
    moved = [p for p in run_dir.iterdir() if p.name.startswith("previous-")]
    assert len(moved) == 1 and (moved[0] / "notes.txt").is_symlink()
    victims.assert_untouched()


# -- the helper itself ---------------------------------------------------------------------------
def test_write_atomic_refuses_a_final_link_and_names_the_file(tmp_path):
    victims = Victims(tmp_path / "outside")
    folder = tmp_path / "run"
    folder.mkdir()
    victims.plant(folder / "a.json")
    with pytest.raises(UnsafeFileError, match=r"a\.json is a symbolic link"):
        write_atomic(folder / "a.json", "{}", within=folder)
    with pytest.raises(UnsafeFileError, match="is a symbolic link"):
        with open_append(folder / "a.json", within=folder):
            pass
    victims.assert_untouched()
    assert sorted(p.name for p in folder.iterdir()) == ["a.json"]  # no temporary left


def test_a_planted_fresh_name_is_passed_over(tmp_path, monkeypatch):
    victims = Victims(tmp_path / "outside")
    folder = tmp_path / "run"
    victims.plant(folder / f".out.bin.{os.getpid()}.{FIXED}.tmp")
    tokens = iter([FIXED, "1" * 16])
    monkeypatch.setattr(safe_files, "_token", lambda: next(tokens))
    write_atomic(folder / "out.bin", b"mine", within=folder)
    assert (folder / "out.bin").read_bytes() == b"mine"
    victims.assert_untouched()


def test_write_errors_name_the_users_file_never_the_temporary(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safe_files.os, "fsync", full)
    info_file = tmp_path / "run" / "run.json"
    with pytest.raises(OSError) as info:
        write_atomic(info_file, "{}", within=tmp_path / "run")
    assert info.value.filename == str(info_file) and ".tmp" not in str(info.value)
    assert "No space left" in str(info.value)
    monkeypatch.undo()
    assert list(info_file.parent.iterdir()) == []
    target = tmp_path / "run" / "samples" / "step_00000001.png"

    def broken_save(*args, **kwargs):
        raise OSError(28, "No space left on device", "/somewhere/.x.tmp")

    from PIL import Image
    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError) as info:
        save_png(np.zeros((4, 4, 3), np.uint8), target, within=tmp_path / "run")
    assert info.value.filename == str(target)
    assert list(target.parent.iterdir()) == []


def test_atomic_file_keeps_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "run.json"
    path.write_text("old")
    with pytest.raises(ZeroDivisionError):
        with atomic_file(path, "w", within=tmp_path) as f:
            f.write("half")
            1 / 0
    assert path.read_text() == "old" and sorted(tmp_path.iterdir()) == [path]


def test_stale_temporaries_of_dead_writers_go_links_included(tmp_path):
    victims = Victims(tmp_path / "outside")
    folder = tmp_path / "run"
    folder.mkdir()
    dead = folder / f".ckpt_00000002.pt.999999999.{FIXED}.tmp"
    dead.write_bytes(b"half")
    planted = folder / f".run.json.999999998.{'1' * 16}.tmp"
    os.symlink(victims.new(), planted)
    alive = folder / f".run.json.{os.getpid()}.{'2' * 16}.tmp"
    alive.write_bytes(b"being written")
    removed = remove_stale_temporaries(folder)
    assert sorted(removed) == sorted([dead, planted])
    assert alive.exists()
    victims.assert_untouched()


def test_make_dirs_refuses_a_file_or_link_where_a_folder_belongs(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "samples").write_text("not a folder")
    with pytest.raises(UnsafeFileError, match="samples is not a folder"):
        make_dirs(tmp_path / "run" / "samples", within=tmp_path / "run")
    assert make_dirs(tmp_path / "run" / "a" / "b", within=tmp_path / "run").is_dir()
    with pytest.raises(UnsafeFileError, match="outside"):
        make_dirs(tmp_path / "other", within=tmp_path / "run")


def test_explorer_files_are_written_without_following_links(tmp_path, monkeypatch):
    """RUN/explore.json and RUN/checkpoints/keep.json (the explorer's state and the steps
    rotation keeps): links at their old and fresh temporary names are passed over, a
    link at the final name is refused naming it."""
    from ganstudio.core.explore_state import read_state, write_state
    run = RunFolder(tmp_path / "run")
    run.create({"model_id": "tinygan", "config": {}})
    victims = Victims(tmp_path / "outside")
    pid = os.getpid()
    for final in ("explore.json", "checkpoints/keep.json"):
        folder, name = os.path.split(final)
        victims.plant(run.path / folder / f".{name}.{pid}.tmp")
        victims.plant(run.path / folder / f".{name}.{pid}.{FIXED}.tmp")
    tokens = _fixed_then_random()
    monkeypatch.setattr(safe_files, "_token", lambda: next(tokens))
    state = read_state(run.path)
    state["best_step"] = 4
    write_state(run.path, state)
    assert read_state(run.path)["best_step"] == 4
    assert '"steps": [4]' in (run.path / "checkpoints" / "keep.json").read_text()
    victims.assert_untouched()
    victims.plant(run.path / "explore.json")
    with pytest.raises(UserError, match="explore.json is a symbolic link"):
        write_state(run.path, state)
    victims.assert_untouched()


def test_links_at_set_aside_names_and_the_lock_are_not_followed(pm, tmp_path):
    """A damaged checkpoint goes aside under a name nothing occupies (a link planted at
    ``ckpt_N.pt.damaged`` stays as it is); a linked ``.lock`` is refused, not followed."""
    run_dir = tmp_path / "run"
    assert isinstance(_train(pm, run_dir, 4), ev.Finished)
    victims = Victims(tmp_path / "outside")
    newest = run_dir / "checkpoints" / "ckpt_00000004.pt"
    newest.write_bytes(newest.read_bytes()[:500])
    victims.plant(run_dir / "checkpoints" / "ckpt_00000004.pt.damaged")
    done = _train(pm, run_dir, 6, resume=True)
    assert isinstance(done, ev.Finished) and done.step == 6
    assert (run_dir / "checkpoints" / "ckpt_00000004.pt.damaged2").stat().st_size == 500
    victims.assert_untouched()
    (run_dir / ".lock").unlink()
    victims.plant(run_dir / ".lock")
    with pytest.raises(UserError, match="lock"):
        _train(pm, run_dir, 8, resume=True)
    victims.assert_untouched()
