"""A run's history survives damaged and crafted files (issues F3, F4, F5, F6).

* every checkpoint damaged: a resume stops with a UserError and changes nothing;
  starting over is explicit (``restart=True``) and keeps the old history aside;
* a checkpoint with a valid checksum but crafted contents (a negative step, a step
  that is text, another model's id, ...) is set aside and the previous one used,
  before anything is pruned or dropped; ``load_trained`` (the ``sample`` command)
  passes over it without a traceback;
* unreadable metrics.jsonl lines (nested 100,000 deep, huge, broken) are skipped
  with a note, never a RecursionError.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ganstudio.core import events as ev
from ganstudio.core.checkpoints import (HEADER_SIZE, MAGIC, CheckpointError, check_state,
                                        list_checkpoints, load_checkpoint)
from ganstudio.core.engine import Engine, EngineSettings
from ganstudio.core.errors import UserError
from ganstudio.core.inference import load_trained
from ganstudio.core.runs import RunFolder, parse_metrics_line

IMAGES = torch.from_numpy(np.random.default_rng(2).integers(0, 255, (8, 3, 8, 8),
                                                            dtype=np.uint8))


def _settings(total: int) -> EngineSettings:
    return EngineSettings(total_steps=total, device="cpu", precision="fp32", log_every_s=1e9,
                          log_every_steps=1, sample_every_s=1e9, sample_every_steps=2,
                          checkpoint_every_s=0, checkpoint_every_steps=2, keep_checkpoints=3,
                          n_samples=4, monitors=False)


def _engine(spec, run_dir: Path, total: int, events: list | None = None, **kw) -> Engine:
    return Engine(spec, run_dir, images=IMAGES, settings=_settings(total),
                  listeners=[events.append] if events is not None else [], **kw)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (but the lock file) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".lock"}


@pytest.fixture
def run8(tmp_path, tiny_spec) -> Path:
    """A finished run of 8 steps: checkpoints at 4, 6, 8 (keep 3), grids 0..8 by 2."""
    run_dir = tmp_path / "run"
    engine = _engine(tiny_spec, run_dir, 8)
    engine.prepare()
    assert isinstance(engine.run_loop(), ev.Finished)
    assert [p.name for p in list_checkpoints(run_dir / "checkpoints")] == [
        "ckpt_00000004.pt", "ckpt_00000006.pt", "ckpt_00000008.pt"]
    return run_dir


def forge(path: Path, state: dict) -> None:
    """Write ``state`` with a valid GAN Studio header and checksum (the format is public)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    digest = hashlib.sha256(payload).hexdigest().encode()
    path.write_bytes((MAGIC + digest + b"\n").ljust(HEADER_SIZE, b" ") + payload)


# -- F3: nothing usable to resume from ----------------------------------------------------------
def test_every_checkpoint_damaged_resume_changes_nothing_and_restart_keeps_history(
        run8, tiny_spec):
    for ckpt in list_checkpoints(run8 / "checkpoints"):
        raw = ckpt.read_bytes()
        ckpt.write_bytes(raw[: len(raw) // 2])
    before = snapshot(run8)
    with pytest.raises(UserError) as info:
        _engine(tiny_spec, run8, 12, resume=True).prepare()
    message = str(info.value)
    assert "no usable checkpoint" in message and "Nothing was changed" in message
    assert "damaged or truncated" in message and "--restart" in message
    assert snapshot(run8) == before

    events: list[ev.Event] = []
    engine = _engine(tiny_spec, run8, 4, events, restart=True)
    engine.prepare()
    assert engine.step == 0
    assert isinstance(engine.run_loop(), ev.Finished)
    old = engine.history_moved_to
    assert old is not None and old.parent == run8 and old.name.startswith("previous-")
    kept = snapshot(old)
    for name, data in before.items():
        if name not in ("run.json", "events.log"):
            assert kept[name] == data, name        # every old file, byte for byte
    assert json.loads(kept["run.json"]) == json.loads(before["run.json"])
    rows, _ = RunFolder(run8).read_metrics()
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    old_rows, _ = RunFolder(old).read_metrics()
    assert [r["step"] for r in old_rows] == list(range(1, 9))
    assert "started over; the earlier history is in previous-" in (run8 / "events.log").read_text()


def test_a_run_without_checkpoints_is_not_started_over_by_accident(run8, tiny_spec):
    for ckpt in list_checkpoints(run8 / "checkpoints"):
        ckpt.unlink()
    before = snapshot(run8)
    with pytest.raises(UserError, match="already holds a run"):
        _engine(tiny_spec, run8, 4).prepare()
    with pytest.raises(UserError, match="no usable checkpoint"):
        _engine(tiny_spec, run8, 4, resume=True).prepare()
    assert snapshot(run8) == before


def test_resume_of_an_empty_run_folder_starts_at_zero(tmp_path, tiny_spec):
    """run.json written, killed before any step: nothing to lose, the resume just starts."""
    run = RunFolder(tmp_path / "run")
    run.create({"model_id": tiny_spec.id, "config": {}})
    events: list[ev.Event] = []
    engine = _engine(tiny_spec, run.path, 2, events, resume=True)
    engine.prepare()
    assert engine.step == 0
    assert isinstance(engine.run_loop(), ev.Finished)


# -- F4 / F6: crafted checkpoint contents ------------------------------------------------------
def _crafted(good: dict, change: dict) -> dict:
    state = dict(good)
    for key, value in change.items():
        if value is KeyError:
            state.pop(key, None)
        else:
            state[key] = value
    return state


CRAFTED = {
    "negative step": {"step": -7},
    "step is text, model is a number": {"step": "abc", "model": 5},
    "step beyond the run's records": {"step": 10**12},
    "step differs from the name": {"step": 3},
    "step is a bool": {"step": True},
    "another model's id": {"model_id": "dcgan"},
    "no model id": {"model_id": KeyError},
    "model is not a dict": {"model": [1, 2]},
    "images_seen negative": {"images_seen": -1},
    "elapsed is NaN": {"elapsed": math.nan},
    "fixed_noise is text": {"fixed_noise": "x"},
    "config is a list": {"config": [1]},
    "rng holds text": {"rng": {"torch": "x"}},
}


@pytest.mark.parametrize("change", list(CRAFTED.values()), ids=list(CRAFTED))
def test_crafted_checkpoint_contents_are_set_aside_before_anything_is_dropped(
        run8, tiny_spec, change):
    newest = run8 / "checkpoints" / "ckpt_00000010.pt"
    good = load_checkpoint(run8 / "checkpoints" / "ckpt_00000008.pt")
    crafted = _crafted(good, change)
    if crafted.get("step") == 8:
        crafted["step"] = 10                       # the name's step, unless that is the point
    forge(newest, crafted)
    genuine = {p.name: p.read_bytes() for p in list_checkpoints(run8 / "checkpoints")
               if p != newest}
    events: list[ev.Event] = []
    engine = _engine(tiny_spec, run8, 10, events, resume=True)
    engine.prepare()
    assert engine.step == 8 and engine.resumed_from.name == "ckpt_00000008.pt"
    warnings = [e.message for e in events if isinstance(e, ev.Warning)]
    assert any("ckpt_00000010.pt was refused" in w and "moved to ckpt_00000010.pt.refused" in w
               for w in warnings), warnings
    assert (run8 / "checkpoints" / "ckpt_00000010.pt.refused").exists()
    rows, _ = engine.run.read_metrics()
    assert [r["step"] for r in rows] == list(range(1, 9))           # nothing of 1..8 lost
    assert [s for s, _ in engine.run.list_samples()] == [0, 2, 4, 6, 8]
    assert {p.name: p.read_bytes() for p in list_checkpoints(run8 / "checkpoints")} == genuine
    assert isinstance(engine.run_loop(), ev.Finished)
    assert (run8 / "checkpoints" / "ckpt_00000006.pt").exists() or \
        len(list_checkpoints(run8 / "checkpoints")) == 3


@pytest.mark.parametrize("change", list(CRAFTED.values()), ids=list(CRAFTED))
def test_sample_passes_over_a_crafted_checkpoint(run8, plugin_manager, change):
    good = load_checkpoint(run8 / "checkpoints" / "ckpt_00000008.pt")
    crafted = _crafted(good, change)
    if crafted.get("step") == 8:
        crafted["step"] = 10
    forge(run8 / "checkpoints" / "ckpt_00000010.pt", crafted)
    skipped = []
    spec, model, state = load_trained(run8, plugin_manager,
                                      warn=lambda p, why: skipped.append((p.name, why)))
    assert state["step"] == 8
    assert [name for name, _ in skipped] == ["ckpt_00000010.pt"]
    assert (run8 / "checkpoints" / "ckpt_00000010.pt").exists()  # sample only reads


def test_sample_with_no_usable_checkpoint_is_a_clear_error(run8, plugin_manager):
    good = load_checkpoint(run8 / "checkpoints" / "ckpt_00000008.pt")
    for ckpt in list_checkpoints(run8 / "checkpoints"):
        forge(ckpt, _crafted(good, {"step": "abc", "model": 5}))
    with pytest.raises(CheckpointError, match="no usable checkpoint .*step \\('abc'\\)"):
        load_trained(run8, plugin_manager)


def test_check_state_accepts_every_genuine_checkpoint(run8):
    for ckpt in list_checkpoints(run8 / "checkpoints"):
        assert check_state(load_checkpoint(ckpt), ckpt, model_id="tinygan", max_step=8) is None


def test_refusal_never_repeats_the_advice_to_load_unsafely(tmp_path):
    class Code:
        def __reduce__(self):
            return (print, ("ran",))

    path = tmp_path / "ckpt_00000002.pt"
    forge(path, {"model": Code(), "step": 2, "model_id": "tinygan"})
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    text = str(info.value)
    assert "was refused" in text and "GLOBAL print was not an allowed global" in text
    for advice in ("weights_only", "will likely succeed", "trust", "file an issue",
                   "safe_globals", "Please use", "\x1b"):
        assert advice not in text


# -- F5: unreadable metrics lines ----------------------------------------------------------------
def test_unreadable_metrics_lines_are_skipped_with_a_note(run8, tiny_spec):
    path = run8 / "metrics.jsonl"
    lines = path.read_text().splitlines()
    bad = ["[" * 100_000 + "]" * 100_000,                            # the line
           '{"step": 3, "x": ' + "[" * 5000 + "]" * 5000 + "}",
           '{"step": 4, "pad": "' + "x" * 200_000 + '"}',              # huge
           '{"step": 5, "loss',                                          # torn
           '"just a string"', '{"step": -1}']
    mixed = lines[:4] + bad + lines[4:]
    path.write_text("\n".join(mixed) + "\n")
    run = RunFolder(run8)
    rows, _ = run.read_metrics()
    assert [r["step"] for r in rows] == list(range(1, 9))
    assert [n for n, _ in run.unreadable_lines] == [5, 6, 7, 8, 9, 10]
    reasons = [why for _, why in run.unreadable_lines]
    assert reasons[0].startswith("too long (200,000 bytes)")  # 100,000 brackets deep
    assert reasons[1] == "nested too deeply" and reasons[2].startswith("too long")
    assert reasons[3].startswith("not valid JSON") and reasons[4] == "not a JSON object"
    # the resume reads them too, notes them, and goes on
    engine = _engine(tiny_spec, run8, 10, resume=True)
    engine.prepare()
    assert engine.step == 8
    assert isinstance(engine.run_loop(), ev.Finished)
    log = (run8 / "events.log").read_text()
    assert "metrics.jsonl line 6: nested too deeply; skipped" in log
    rows, _ = RunFolder(run8).read_metrics()
    assert [r["step"] for r in rows] == list(range(1, 11))


def test_metrics_parsing_is_guarded_and_brackets_in_text_do_not_count():
    assert parse_metrics_line(b'{"step": 1, "note": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}')[1] == ""
    assert parse_metrics_line(b"[" * 30 + b"]" * 30) == (None, "nested too deeply")
    assert parse_metrics_line(b'{"step": 1.5}') == (None, "no valid 'step'")


def test_a_torn_last_line_does_not_swallow_the_next_row(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.create({"model_id": "tinygan", "config": {}})
    run.append_metrics([{"step": 1, "loss": 0.5}])
    with open(run.metrics_path, "a") as f:
        f.write('{"step": 2, "lo')                                   # killed mid-line
    again = RunFolder(run.path)
    again.append_metrics([{"step": 2, "loss": 0.25}])
    rows, _ = again.read_metrics()
    assert [r["step"] for r in rows] == [1, 2] and rows[1]["loss"] == 0.25


# -- the command line: exit 2 and nothing changed; --restart keeps the history ------------------
def test_cli_resume_without_a_usable_checkpoint_exits_2_and_restart_keeps_history(
        tmp_path, image_folder, tiny_plugin_file, capsys):
    from ganstudio.cli import main
    fast = ["--device", "cpu", "--quiet", "--no-monitors", "--checkpoint-steps", "2",
            "--sample-steps", "2", "--log-steps", "1"]
    run = tmp_path / "run"
    assert main(["train", "--model", "tinygan", "--data", str(image_folder), "--out", str(run),
                 "--steps", "4", "--set", "batch_size=3", *fast]) == 0
    for ckpt in list_checkpoints(run / "checkpoints"):
        ckpt.write_bytes(ckpt.read_bytes()[:300])
    capsys.readouterr()
    before = snapshot(run)
    code = main(["train", "--out", str(run), "--resume", "--steps", "6", *fast])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert "no usable checkpoint" in err and "Nothing was changed" in err
    assert snapshot(run) == before
    code = main(["train", "--out", str(run), "--restart", "--steps", "2", *fast])
    err = capsys.readouterr().err
    assert code == 0, err
    moved = [p for p in run.iterdir() if p.name.startswith("previous-")]
    assert len(moved) == 1 and f"the earlier history is in {moved[0]}" in err
    assert (moved[0] / "metrics.jsonl").read_bytes() == before["metrics.jsonl"]
    rows, _ = RunFolder(run).read_metrics()
    assert [r["step"] for r in rows] == [1, 2]
