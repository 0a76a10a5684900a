"""Safety: nothing in a run folder or a weights file gets to run code or reach outside.

The crafted pickle here really does execute code when loaded the unsafe way
(the first test proves it by letting it create its marker folder); the
studio's loaders must refuse it and the marker must never appear.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from ganstudio.core import events as ev
from ganstudio.core.checkpoints import (HEADER_SIZE, MAGIC, CheckpointError, list_checkpoints,
                                        load_checkpoint, load_latest, load_weights_file)
from ganstudio.core.engine import Engine, EngineSettings
from ganstudio.core.errors import UserError
from ganstudio.core.runs import RunError, RunFolder, list_runs
from ganstudio.core.safe_files import UnsafeFileError


class _Payload:
    """Unpickling this calls os.mkdir(marker): stands in for any code an attacker picks."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def crafted_bytes(marker: Path, *, with_header: bool) -> bytes:
    """A torch.save file holding the payload; optionally with a valid GAN Studio header
    and checksum (the format is public: an attacker can compute both)."""
    buf = io.BytesIO()
    torch.save({"model": _Payload(marker), "step": 99, "model_id": "tinygan"}, buf)
    payload = buf.getvalue()
    if not with_header:
        return payload
    digest = hashlib.sha256(payload).hexdigest().encode()
    return (MAGIC + digest + b"\n").ljust(HEADER_SIZE, b" ") + payload


def _settings(**kw) -> EngineSettings:
    base = dict(total_steps=4, device="cpu", checkpoint_every_s=0, checkpoint_every_steps=2,
                sample_every_s=1e9, sample_every_steps=1000, n_samples=4)
    base.update(kw)
    s = EngineSettings(**base)
    if hasattr(s, "monitors"):
        s.monitors = False
    return s


IMAGES = torch.from_numpy(np.random.default_rng(1).integers(0, 255, (4, 3, 8, 8),
                                                            dtype=np.uint8))


@pytest.fixture
def trained_run(tmp_path, tiny_spec) -> Path:
    run_dir = tmp_path / "run"
    eng = Engine(tiny_spec, run_dir, images=IMAGES, settings=_settings())
    eng.prepare()
    assert isinstance(eng.run_loop(), ev.Finished)
    assert [p.name for p in list_checkpoints(run_dir / "checkpoints")] == [
        "ckpt_00000002.pt", "ckpt_00000004.pt"]
    return run_dir


def test_the_crafted_pickle_really_runs_code_when_loaded_unsafely(tmp_path):
    marker = tmp_path / "pwned"
    data = crafted_bytes(marker, with_header=False)
    torch.load(io.BytesIO(data), weights_only=False)  # what an unsafe loader would do
    assert marker.is_dir()


@pytest.mark.parametrize("with_header", [False, True], ids=["bare", "valid-header"])
def test_crafted_checkpoint_among_a_runs_checkpoints_is_refused_not_run(
        trained_run, tmp_path, tiny_spec, with_header):
    marker = tmp_path / "pwned"
    evil = trained_run / "checkpoints" / "ckpt_00000099.pt"
    evil.write_bytes(crafted_bytes(marker, with_header=with_header))

    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(evil)
    with pytest.raises(CheckpointError, match="refused"):
        load_weights_file(evil)
    skipped = []
    path, state = load_latest(trained_run / "checkpoints", on_skip=lambda p, why:
                              skipped.append((p.name, why)))
    assert path.name == "ckpt_00000004.pt" and state["step"] == 4
    assert skipped and skipped[0][0] == "ckpt_00000099.pt"

    events: list[ev.Event] = []
    eng = Engine(tiny_spec, trained_run, images=IMAGES, settings=_settings(total_steps=6),
                 listeners=[events.append], resume=True)
    eng.prepare()
    assert eng.step == 4 and eng.resumed_from.name == "ckpt_00000004.pt"
    warning = next(e for e in events if isinstance(e, ev.Warning) and e.kind == "checkpoint")
    assert "ckpt_00000099.pt" in warning.message and "refused" in warning.message
    assert not evil.exists() and (evil.parent / "ckpt_00000099.pt.refused").exists()
    assert isinstance(eng.run_loop(), ev.Finished)
    assert not marker.exists(), "the crafted checkpoint executed code"


def test_crafted_weights_file_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    plain = tmp_path / "generator.pt"
    plain.write_bytes(crafted_bytes(marker, with_header=False))
    with pytest.raises(CheckpointError, match="refused: not a plain weights file"):
        load_weights_file(plain)
    assert not marker.exists()


def test_weights_files_load_as_plain_tensors(tmp_path, trained_run):
    from safetensors.torch import save_file
    weights = {"layer.weight": torch.arange(6, dtype=torch.float32).view(2, 3)}
    save_file(weights, str(tmp_path / "g.safetensors"))
    torch.save(weights, tmp_path / "g.pt")
    for name in ("g.safetensors", "g.pt"):
        loaded = load_weights_file(tmp_path / name)
        assert torch.equal(loaded["layer.weight"], weights["layer.weight"]), name
    ckpt = load_weights_file(trained_run / "checkpoints" / "ckpt_00000004.pt")
    assert ckpt["step"] == 4 and "G" in ckpt["model"]
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 12)
    with pytest.raises(CheckpointError, match="broken.safetensors"):
        load_weights_file(tmp_path / "broken.safetensors")


@pytest.mark.parametrize("content, message", [
    ("{not json", "cannot be read"),
    ("[1, 2, 3]", "expected a JSON object"),
    ('{"config": {}}', "'model_id' is missing"),
    ('{"model_id": "tinygan", "config": []}', "'config' is missing or not a dict"),
    ('{"model_id": "tinygan", "config": {}, "total_steps": "many"}', "'total_steps' must be"),
    ('{"model_id": "tinygan", "config": {}, "total_steps": true}', "'total_steps' must be"),
    ('{"model_id": "tinygan", "config": {}, "format": 99}', "newer GAN Studio"),
    ('{"model_id": "tinygan", "config": {}, "dataset": {"folder": 5}}', "'dataset.folder'"),
    ('{"model_id": "  ", "config": {}}', "'model_id' is empty"),
    ("[" * 100000 + "]" * 100000, "cannot be read"),
])
def test_run_json_is_validated_on_load(tmp_path, content, message):
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    run.info_path.write_text(content)
    with pytest.raises(RunError, match=message.replace("(", r"\(").replace("'", "'")):
        run.read_info()
    assert list_runs(tmp_path) == []  # a damaged run is left out of the run list


def test_oversized_run_json_is_refused_unread(tmp_path, monkeypatch):
    import ganstudio.core.runs as runs_mod
    monkeypatch.setattr(runs_mod, "MAX_INFO_BYTES", 1000)
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    run.info_path.write_text(json.dumps({"model_id": "x", "config": {"pad": "x" * 2000}}))
    with pytest.raises(RunError, match="refused"):
        run.read_info()


def test_settings_in_run_json_are_validated_on_resume(trained_run, tiny_spec):
    info = json.loads((trained_run / "run.json").read_text())
    info["config"]["batch_size"] = -5
    (trained_run / "run.json").write_text(json.dumps(info))
    eng = Engine(tiny_spec, trained_run, images=IMAGES, settings=_settings(), resume=True)
    with pytest.raises(UserError, match="batch_size"):
        eng.prepare()


def test_cli_reports_a_bad_run_json_in_one_line(trained_run, tiny_plugin_file, capsys):
    from ganstudio.cli import main
    (trained_run / "run.json").write_text('{"model_id": 7, "config": {}}')
    code = main(["train", "--resume", "--out", str(trained_run), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and "'model_id' is missing or not a str" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_paths_from_a_run_folder_cannot_escape_it(tmp_path):
    run = RunFolder(tmp_path / "run")
    run.create({"model_id": "tinygan", "config": {}})
    outside = tmp_path / "secret.txt"
    outside.write_text("keep out")
    assert run.inside("samples/step_00000001.png") == run.path.resolve() / "samples" / \
        "step_00000001.png"
    for bad in ("../secret.txt", "samples/../../secret.txt", str(outside), "a\0b"):
        with pytest.raises(RunError):
            run.inside(bad)
    os.symlink(outside, run.path / "samples" / "step_00000005.png")
    with pytest.raises(RunError, match="outside the run folder"):
        run.inside("samples/step_00000005.png")
    assert run.list_samples() == []  # a linked sample is not listed, so never read
    os.symlink(outside, run.path / "checkpoints" / "ckpt_00000005.pt")
    assert list_checkpoints(run.checkpoints_dir) == []


@pytest.mark.parametrize("member", ["events.log", "metrics.jsonl"])
def test_linked_log_files_are_never_written_through(tmp_path, member):
    run = RunFolder(tmp_path / "run")
    run.create({"model_id": "tinygan", "config": {}})
    target = tmp_path / "shell_profile"
    target.write_text("original\n")
    os.symlink(target, run.path / member)
    if member == "events.log":
        run.log("hello")  # the log never stops a run: the line is dropped, not redirected
    else:
        with pytest.raises(UnsafeFileError, match="metrics.jsonl is a symbolic link"):
            run.append_metrics([{"step": 1, "loss": 0.5}])
    assert target.read_text() == "original\n"
    with pytest.raises(RunError, match=f"{member} is a symbolic link"):
        run.read_info()


def test_linked_checkpoints_folder_is_refused(tmp_path, tiny_spec):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    os.symlink(elsewhere, run.path / "checkpoints")
    eng = Engine(tiny_spec, run.path, images=IMAGES, settings=_settings())
    with pytest.raises(RunError, match="checkpoints is a symbolic link"):
        eng.prepare()
    assert list(elsewhere.iterdir()) == []


def test_verified_checkpoint_with_malformed_values_falls_back(trained_run, tiny_spec):
    """A file with a valid header and checksum but nonsense inside (only a crafted file
    can be that): refused with a clear warning, the previous checkpoint is used."""
    from ganstudio.core.checkpoints import save_checkpoint
    state = load_checkpoint(trained_run / "checkpoints" / "ckpt_00000004.pt")
    state["step"] = "ninety-nine"
    save_checkpoint(state, trained_run / "checkpoints", 99, keep_last=0)
    events: list[ev.Event] = []
    eng = Engine(tiny_spec, trained_run, images=IMAGES, settings=_settings(total_steps=6),
                 listeners=[events.append], resume=True)
    eng.prepare()
    assert eng.step == 4 and eng.resumed_from.name == "ckpt_00000004.pt"
    warning = next(e for e in events if isinstance(e, ev.Warning) and e.kind == "checkpoint")
    assert ("ckpt_00000099.pt was refused: its step ('ninety-nine') is not a non-negative "
            "whole number") in warning.message
    assert (trained_run / "checkpoints" / "ckpt_00000099.pt.refused").exists()
    assert isinstance(eng.run_loop(), ev.Finished)


def test_no_code_path_unpickles_without_weights_only():
    """Every torch.load in GAN Studio and its built-in plugins passes weights_only=True;
    nothing calls pickle.load(s) or np.load(allow_pickle=True). (A guard against a new
    loader slipping in.)"""
    import ast
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for folder in ("ganstudio", "plugins"):
        for path in sorted((root / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                name = ast.unparse(node.func)
                kw = {k.arg: k.value for k in node.keywords}
                where = f"{path.relative_to(root)}:{node.lineno}"
                if name.endswith("torch.load") or name == "load" and "weights_only" in kw:
                    ok = isinstance(kw.get("weights_only"), ast.Constant) and \
                        kw["weights_only"].value is True
                    if not ok:
                        offenders.append(f"{where} {name} without weights_only=True")
                if name in ("pickle.load", "pickle.loads", "cPickle.load", "dill.load"):
                    offenders.append(f"{where} {name}")
                if name.endswith("np.load") or name.endswith("numpy.load"):
                    flag = kw.get("allow_pickle")
                    if flag is not None and not (isinstance(flag, ast.Constant)
                                                 and flag.value is False):
                        offenders.append(f"{where} {name} with allow_pickle")
    assert not offenders, "\n".join(offenders)
