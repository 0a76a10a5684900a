"""Training faults: NaN/Inf losses, out of memory, a plugin raising inside its step.

A test-only model plugin, FaultyGAN, misbehaves on command (its settings say
when); the engine must turn each fault into a clear event, keep the process
up, and let the run go on from the right place.
"""
from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from ganstudio.core import events as ev
from ganstudio.core.checkpoints import list_checkpoints, load_checkpoint, verify_checkpoint
from ganstudio.core.config import Field, common_gan_fields
from ganstudio.core.engine import Engine, EngineSettings, is_out_of_memory
from ganstudio.core.errors import UserError
from ganstudio.core.model import GAN, GANModel, ModelSpec
from ganstudio.core.runs import RunFolder

PLUGIN = "faultyplugin"


def _explode(step: int) -> None:
    raise ValueError(f"the faulty plugin gave up at call {step}")


class FaultyGAN(GANModel):
    """One weight pulled towards 1 by SGD; fails the way its config says."""

    latent_dim = 4

    def __init__(self, config, image_shape, device):
        super().__init__(config, image_shape, device)
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.opt_g = torch.optim.SGD([self.w], lr=float(self.config["lr"]))
        self.calls = 0

    def train_step(self, real):
        self.calls += 1
        cfg = self.config
        if cfg["raise_at"] and self.calls == cfg["raise_at"]:
            _explode(self.calls)
        if real.shape[0] > cfg["oom_above_batch"] and self.calls >= cfg["oom_from"]:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        lr = self.opt_g.param_groups[0]["lr"]
        self.opt_g.zero_grad()
        loss = ((self.w - 1.0) ** 2).sum()
        loss.backward()
        self.opt_g.step()
        if self.calls >= cfg["nan_from"] and lr > cfg["nan_threshold"]:
            with torch.no_grad():
                self.w.fill_(float("nan"))  # diverged weights, as a real blow-up leaves them
        return {"loss_g": ((self.w - 1.0) ** 2).sum().detach(),
                "lr": torch.tensor(lr), "batch": torch.tensor(float(real.shape[0]))}

    @torch.no_grad()
    def sample(self, z):
        if self.config["raise_in_sample"]:
            _explode(-1)
        c, h, w = self.image_shape
        return torch.zeros(z.shape[0], c, h, w)

    def state_dict(self):
        return {"w": self.w.detach().clone(), "opt_g": self.opt_g.state_dict(),
                "calls": self.calls}

    def load_state_dict(self, state):
        with torch.no_grad():
            self.w.copy_(state["w"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.calls = int(state["calls"])

    def generator_module(self):
        return torch.nn.Identity()

    def optimizers(self):
        return {"g": self.opt_g}


def faulty_spec() -> ModelSpec:
    schema = common_gan_fields(resolution=8, resolutions=(8,), batch_size=4) + [
        Field("lr", "float", 0.1, "learning rate", min=1e-6, max=10.0),
        Field("nan_threshold", "float", 100.0, "NaN when lr is above this", min=0.0),
        Field("nan_from", "int", 0, "first call that may diverge", min=0),
        Field("oom_above_batch", "int", 65536, "out of memory above this batch", min=1),
        Field("oom_from", "int", 0, "first call that may run out of memory", min=0),
        Field("raise_at", "int", 0, "call that raises (0: never)", min=0),
        Field("raise_in_sample", "bool", False, "sample() raises"),
    ]
    return ModelSpec(id="faulty", name="Faulty", kind=GAN, schema=schema, factory=FaultyGAN,
                     plugin=PLUGIN, learning_rates=("lr",))


IMAGES = torch.from_numpy(
    np.random.default_rng(0).integers(0, 255, (6, 3, 8, 8), dtype=np.uint8))


def settings(**kw) -> EngineSettings:
    base = dict(total_steps=30, device="cpu", log_every_s=1e9, log_every_steps=1,
                sample_every_s=1e9, sample_every_steps=1000, checkpoint_every_s=0,
                checkpoint_every_steps=5, keep_checkpoints=10, n_samples=4)
    base.update(kw)
    s = EngineSettings(**base)
    if hasattr(s, "monitors"):
        s.monitors = False  # the balance alarm is not what these tests are about
    return s


def engine_for(run_dir, events, *, resume=False, overrides=None, **kw) -> Engine:
    return Engine(faulty_spec(), run_dir, images=IMAGES, overrides=overrides or {},
                  settings=settings(**kw), listeners=[events.append], resume=resume)


def metrics_rows(run_dir):
    rows, _ = RunFolder(run_dir).read_metrics(0)
    return rows


def test_nan_pauses_then_rollback_with_lower_lr_finishes(tmp_path):
    events: list[ev.Event] = []
    paused = threading.Event()
    eng = engine_for(tmp_path / "run", events, on_nan="pause",
                     overrides={"lr": 0.1, "nan_threshold": 0.06, "nan_from": 12})
    eng.listeners.append(lambda e: paused.set() if isinstance(e, ev.Paused) else None)
    eng.prepare()
    result: list[ev.Event] = []
    worker = threading.Thread(target=lambda: result.append(eng.run_loop()))
    worker.start()
    try:
        assert paused.wait(60), "the run did not pause on NaN"
        pause = next(e for e in events if isinstance(e, ev.Paused))
        assert pause.reason == "nan" and pause.step == 12 and eng.is_paused
        warning = next(e for e in events if isinstance(e, ev.Warning) and e.kind == "nan")
        assert "NaN or infinite at step 12" in warning.message
        assert "ckpt_00000010.pt" in warning.message
        # Asking for a checkpoint of the diverged weights is refused: 10 stays the newest.
        eng.checkpoint_now()
        deadline = threading.Event()
        for _ in range(100):
            if any(isinstance(e, ev.Warning) and "no checkpoint written" in e.message
                   for e in events):
                break
            deadline.wait(0.05)
        assert any(isinstance(e, ev.Warning) and "no checkpoint written" in e.message
                   for e in events)
        assert [p.name for p in list_checkpoints(eng.run.checkpoints_dir)][-1] == \
            "ckpt_00000010.pt"
        eng.rollback(0.5)
    finally:
        worker.join(60)
        if worker.is_alive():
            eng.stop()
            worker.join(10)
    assert not worker.is_alive()
    done = result[0]
    assert isinstance(done, ev.Finished) and done.step == 30 and done.reason == "completed"
    assert eng.model.opt_g.param_groups[0]["lr"] == pytest.approx(0.05)
    assert eng.config["lr"] == pytest.approx(0.05)
    assert RunFolder(tmp_path / "run").read_info()["config"]["lr"] == pytest.approx(0.05)
    rows = metrics_rows(tmp_path / "run")
    steps = [r["step"] for r in rows]
    assert steps == sorted(set(steps)) and steps[-1] == 30  # NaN rows were cut at step 10
    assert all(r["loss_g"] is not None and math.isfinite(r["loss_g"]) for r in rows)
    assert all(r["lr"] == pytest.approx(0.05) for r in rows if r["step"] > 10)
    assert all(r["lr"] == pytest.approx(0.1) for r in rows if r["step"] <= 10)
    for p in list_checkpoints(tmp_path / "run" / "checkpoints"):
        assert verify_checkpoint(p) is None
        assert torch.isfinite(load_checkpoint(p)["model"]["w"]).all(), p.name
    assert isinstance(events[-1], ev.Finished)


def test_nan_in_the_cli_mode_stops_and_resume_with_lower_lr_continues(tmp_path):
    events: list[ev.Event] = []
    eng = engine_for(tmp_path / "run", events, on_nan="stop",
                     overrides={"lr": 0.1, "nan_threshold": 0.06, "nan_from": 8})
    eng.prepare()
    failed = eng.run_loop()
    assert isinstance(failed, ev.Failed)
    assert "NaN or infinite at step 8" in failed.message and "ckpt_00000005.pt" in failed.message
    assert failed.kind == "nan" and failed.settings == {"lr": pytest.approx(0.05)}
    assert failed.action == "resume" and failed.suggestion == "lr=0.05"
    assert [p.name for p in list_checkpoints(eng.run.checkpoints_dir)] == ["ckpt_00000005.pt"]

    events2: list[ev.Event] = []
    again = engine_for(tmp_path / "run", events2, resume=True, on_nan="stop",
                       overrides={"lr": 0.05})
    again.prepare()
    assert again.step == 5
    done = again.run_loop()
    assert isinstance(done, ev.Finished) and done.step == 30
    rows = metrics_rows(tmp_path / "run")
    assert [r["step"] for r in rows] == list(range(1, 31))
    assert all(r["lr"] == pytest.approx(0.05) for r in rows if r["step"] > 5)
    log = (tmp_path / "run" / "events.log").read_text()
    assert "learning rates changed on restore: lr 0.1 -> 0.05" in log


def test_nan_before_any_checkpoint_rolls_back_to_a_fresh_start(tmp_path):
    events: list[ev.Event] = []
    eng = engine_for(tmp_path / "run", events, on_nan="pause", checkpoint_every_steps=0,
                     total_steps=10,
                     overrides={"lr": 0.1, "nan_threshold": 0.06, "nan_from": 3})
    eng.listeners.append(lambda e: eng.rollback(0.5) if isinstance(e, ev.Paused) else None)
    eng.prepare()
    done = eng.run_loop()
    assert isinstance(done, ev.Finished) and done.step == 10
    assert any(isinstance(e, ev.Warning) and "starting again from step 0" in e.message
               for e in events)
    assert eng.config["lr"] == pytest.approx(0.05)
    assert torch.isfinite(eng.model.w).all()
    assert eng.model.calls == 10  # a new model, trained from step 0
    assert [r["step"] for r in metrics_rows(tmp_path / "run")] == list(range(1, 11))


def test_out_of_memory_names_a_batch_size_and_the_run_continues_with_it(tmp_path):
    events: list[ev.Event] = []
    eng = engine_for(tmp_path / "run", events, total_steps=20,
                     overrides={"batch_size": 16, "oom_above_batch": 8, "oom_from": 7})
    eng.prepare()
    failed = eng.run_loop()
    assert isinstance(failed, ev.Failed)
    assert "out of memory at step 6" in failed.message
    assert failed.kind == "out_of_memory" and failed.settings == {"batch_size": 8}
    assert failed.action == "resume" and failed.suggestion == "batch_size=8"
    assert failed.plugin == "" and failed.traceback == ""
    assert "ERROR" in (tmp_path / "run" / "events.log").read_text()

    events2: list[ev.Event] = []
    again = engine_for(tmp_path / "run", events2, resume=True, total_steps=20,
                       overrides={"batch_size": 8})
    again.prepare()
    assert again.step == 5  # the last checkpoint before the failure
    done = again.run_loop()
    assert isinstance(done, ev.Finished) and done.step == 20
    rows = metrics_rows(tmp_path / "run")
    assert all(r["batch"] == 16 for r in rows if r["step"] <= 5)
    assert all(r["batch"] == 8 for r in rows if r["step"] > 5)


def test_other_backends_out_of_memory_errors_are_recognised():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))


@pytest.mark.parametrize("where", ["train_step", "sample"])
def test_plugin_exception_fails_the_run_naming_the_plugin(tmp_path, where):
    events: list[ev.Event] = []
    overrides = {"raise_at": 3} if where == "train_step" else {"raise_in_sample": True}
    eng = engine_for(tmp_path / "run", events, overrides=overrides)
    eng.prepare()
    failed = eng.run_loop()
    assert isinstance(failed, ev.Failed)
    assert failed.plugin == PLUGIN
    assert f"plugin '{PLUGIN}' (faulty) failed at step" in failed.message
    assert "ValueError" in failed.message and "the faulty plugin gave up" in failed.message
    assert "_explode" in failed.traceback and "Traceback" in failed.traceback
    log = (tmp_path / "run" / "events.log").read_text()
    assert f"ERROR   plugin '{PLUGIN}'" in log
    assert "in _explode" in log and 'raise ValueError(f"the faulty plugin gave up' in log
    if where == "train_step":
        assert failed.step == 2
    # The process is fine: a new run in another folder trains normally.
    ok = engine_for(tmp_path / "other", [], total_steps=3)
    ok.prepare()
    assert isinstance(ok.run_loop(), ev.Finished)


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_a_plugin_failing_on_bf16_is_told_how_to_train_in_fp32(tmp_path, monkeypatch, precision):
    def step(self, real):
        if torch.is_autocast_enabled("cpu"):     # as an op without a bf16 kernel would
            raise RuntimeError('"cholesky_cpu" not implemented for \'BFloat16\'')
        raise RuntimeError('"cholesky_cpu" not implemented for \'BFloat16\' (no autocast)')
    monkeypatch.setattr(FaultyGAN, "train_step", step)
    events: list[ev.Event] = []
    eng = engine_for(tmp_path / "run", events, precision=precision)
    eng.prepare()
    failed = eng.run_loop()
    assert isinstance(failed, ev.Failed) and failed.plugin == PLUGIN
    (started,) = [e for e in events if isinstance(e, ev.Started)]
    assert started.precision == precision       # the studio's status bar shows it
    assert "not implemented for 'BFloat16'" in failed.message
    assert "--precision" not in failed.message        # core states facts; faces word advice
    if precision == "bf16":
        assert failed.kind == "precision" and "trained in bf16 autocast" in failed.message
        assert failed.run_options == {"precision": "fp32"} and failed.action == "resume"
    else:                         # no autocast: nothing to suggest about precision
        assert failed.kind == "plugin_error" and failed.run_options == {}
        assert "trained in bf16 autocast" not in failed.message


@pytest.mark.parametrize("bad", ["float_loss", "wrong_sample_shape"])
def test_a_plugin_returning_the_wrong_thing_is_named_not_blamed_on_the_studio(
        tmp_path, monkeypatch, bad):
    if bad == "float_loss":       # .item() in the step: a float instead of a tensor
        monkeypatch.setattr(FaultyGAN, "train_step", lambda self, real: {"loss_g": 0.5})
    else:                         # the channel axis forgotten
        monkeypatch.setattr(FaultyGAN, "sample", lambda self, z: torch.zeros(z.shape[0], 8, 8))
    eng = engine_for(tmp_path / "run", [])
    eng.prepare()
    failed = eng.run_loop()
    assert isinstance(failed, ev.Failed) and failed.plugin == PLUGIN
    assert "internal error" not in failed.message
    assert f"plugin '{PLUGIN}' (faulty) failed" in failed.message
    if bad == "float_loss":
        assert "train_step must return a dict of name -> scalar tensor" in failed.message
        assert "float for 'loss_g'" in failed.message
    else:
        assert "sample() must return a tensor (N, C, H, W)" in failed.message
        assert "(4, 8, 8)" in failed.message


def test_an_engine_bug_is_not_blamed_on_the_plugin(tmp_path, monkeypatch):
    events: list[ev.Event] = []
    eng = engine_for(tmp_path / "run", events, total_steps=5)
    eng.prepare()

    # A lookup that fails inside the engine's own frame (no plugin code on the stack;
    # a function defined in this file would count as plugin code, as the model's is here).
    monkeypatch.setattr(eng.data, "batch", {}.__getitem__)
    failed = eng.run_loop()
    assert isinstance(failed, ev.Failed)
    assert failed.plugin == "" and failed.message.startswith("internal error: KeyError")
    assert failed.kind == "internal" and "ganstudio/core/engine/" in failed.traceback


def test_a_second_writer_on_the_same_run_is_refused(tmp_path):
    first = engine_for(tmp_path / "run", [], total_steps=3)
    first.prepare()                      # holds the run's lock until its loop ends
    before = snapshot(tmp_path / "run")
    second = engine_for(tmp_path / "run", [], total_steps=3, resume=True)
    with pytest.raises(UserError, match="being trained by another process"):
        second.prepare()
    assert snapshot(tmp_path / "run") == before          # the refused one touched nothing
    assert isinstance(first.run_loop(), ev.Finished)
    third = engine_for(tmp_path / "run", [], total_steps=5, resume=True)
    third.prepare()                      # the lock went with the first run's end
    assert isinstance(third.run_loop(), ev.Finished)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["model_id"] == "faulty"


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes (the lock file aside)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def test_two_trainings_started_at_once_on_one_folder_leave_one_run(tmp_path):
    """Issue F2: the loser of a simultaneous start stops with a UserError before it
    reads or writes anything in the folder; the winner's run is whole."""
    run = tmp_path / "run"
    barrier = threading.Barrier(2)
    outcome: dict[int, object] = {}
    small = torch.from_numpy(np.random.default_rng(1).integers(0, 255, (9, 3, 8, 8),
                                                                 dtype=np.uint8))

    def start(i: int) -> None:
        eng = Engine(faulty_spec(), run, images=IMAGES if i == 0 else small,
                     overrides={"lr": 0.1 if i == 0 else 0.2},
                     settings=settings(total_steps=12), listeners=[])
        barrier.wait()
        try:
            eng.prepare()
        except UserError as e:
            outcome[i] = e
            return
        outcome[i] = eng.run_loop()

    threads = [threading.Thread(target=start, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    errors = {i: o for i, o in outcome.items() if isinstance(o, UserError)}
    finished = {i: o for i, o in outcome.items() if isinstance(o, ev.Finished)}
    assert len(errors) == 1 and len(finished) == 1, outcome
    assert "being trained by another process" in str(next(iter(errors.values())))
    (winner,) = finished
    info = json.loads((run / "run.json").read_text())
    assert info["config"]["lr"] == (0.1 if winner == 0 else 0.2)
    assert info["dataset"]["images"] == (6 if winner == 0 else 9)
    rows = metrics_rows(run)
    assert [r["step"] for r in rows] == list(range(1, 13))
    assert all(r["lr"] == pytest.approx(info["config"]["lr"]) for r in rows)
    assert [p.name for p in list_checkpoints(run / "checkpoints")][-1] == "ckpt_00000012.pt"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device for a real OOM")
def test_real_cuda_out_of_memory_is_survived_and_the_run_goes_on(tmp_path):
    """A real CUDA OOM (DCGAN at 128 px, batch 65536): a clear message with a smaller
    batch, device memory handed back, and the same run resumes with a workable batch."""
    import gc
    from ganstudio.plugins import PluginManager
    spec = PluginManager(load_folder=False).get_model("dcgan")
    images = torch.from_numpy(np.random.default_rng(3).integers(0, 255, (64, 3, 128, 128),
                                                                dtype=np.uint8))
    base = dict(total_steps=4, device="cuda", checkpoint_every_s=0, checkpoint_every_steps=2,
                sample_every_s=1e9, sample_every_steps=1000, n_samples=4)
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    eng = Engine(spec, tmp_path / "run", images=images, settings=EngineSettings(**base),
                 overrides={"resolution": 128, "batch_size": 65536})
    eng.prepare()
    failed = eng.run_loop()
    assert isinstance(failed, ev.Failed), failed
    assert "ran out of memory" in failed.message and failed.suggestion == "batch_size=32768"
    del eng
    gc.collect()
    torch.cuda.empty_cache()
    assert torch.cuda.memory_allocated() - before < 64 * 2**20  # nothing big left behind
    again = Engine(spec, tmp_path / "run", images=images, settings=EngineSettings(**base),
                   overrides={"batch_size": 16}, resume=True)
    again.prepare()
    assert isinstance(again.run_loop(), ev.Finished)


def test_cli_prints_the_command_that_continues_after_out_of_memory(
        tmp_path, image_folder, monkeypatch, capsys):
    import shlex
    import types
    import ganstudio
    import ganstudio.plugins as gp
    from ganstudio.cli import main

    module = types.ModuleType("faultyplugin")
    module.GANSTUDIO_PLUGIN_API = ganstudio.PLUGIN_API_VERSION
    module.ganstudio_register_models = ganstudio.hookimpl(lambda: [faulty_spec()])
    pm = gp.PluginManager(load_entry_points=False, load_folder=False, extra=[(PLUGIN, module)])
    assert pm.plugins[PLUGIN].status == "ok", pm.plugins[PLUGIN].error
    monkeypatch.setattr(gp, "get_plugin_manager", lambda *a, **k: pm)

    run_dir = tmp_path / "oom run"
    code = main(["train", "--model", "faulty", "--data", str(image_folder), "--out",
                 str(run_dir), "--steps", "20", "--device", "cpu", "--quiet",
                 "--checkpoint-steps", "5", "--set", "batch_size=16",
                 "--set", "oom_above_batch=8", "--set", "oom_from=7"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "error: the device ran out of memory at step 6 (batch size 16); try a smaller " \
           "batch (batch_size=8) and resume" in err
    line = next(ln for ln in err.splitlines() if ln.startswith("to continue: "))
    argv = shlex.split(line[len("to continue: "):])
    assert argv[:2] == ["ganstudio", "train"] and "--set" in argv and "batch_size=8" in argv
    code = main(argv[1:] + ["--device", "cpu", "--quiet"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "resuming faulty on cpu" in err and "from step 5 to 20" in err
    assert "completed at step 20" in err


# -- learning rates as declared ------------------------------------------------------------------
class TwoOptimizers(FaultyGAN):
    """G and D optimizers; D's rate is lr * ttur (as a TTUR multiplier is)."""

    def __init__(self, config, image_shape, device):
        super().__init__(config, image_shape, device)
        self.v = torch.nn.Parameter(torch.zeros(1))
        self.opt_d = torch.optim.SGD([self.v], lr=float(config["lr"]) * float(config["ttur"]))

    def state_dict(self):
        return {**super().state_dict(), "v": self.v.detach().clone(),
                "opt_d": self.opt_d.state_dict()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        with torch.no_grad():
            self.v.copy_(state["v"])
        self.opt_d.load_state_dict(state["opt_d"])

    def optimizers(self):
        return {"g": self.opt_g, "d": self.opt_d}


def two_optimizer_spec(learning_rates) -> ModelSpec:
    spec = faulty_spec()
    schema = list(spec.schema) + [Field("ttur", "float", 2.0, "D's rate = lr * ttur", min=0.1,
                                        max=10.0)]
    return ModelSpec(id="faulty", name="Faulty", kind=GAN, schema=schema,
                     factory=TwoOptimizers, plugin=PLUGIN, learning_rates=learning_rates)


def test_every_declared_learning_rate_is_reapplied_on_resume(tmp_path):
    """``--resume --set ttur=...`` changes D's optimizer only; ``lr`` both (issue item 7)."""
    spec = two_optimizer_spec({"lr": ("g", "d"), "ttur": "d"})
    first = Engine(spec, tmp_path / "run", images=IMAGES, settings=settings(total_steps=5))
    first.prepare()
    assert isinstance(first.run_loop(), ev.Finished)
    again = Engine(spec, tmp_path / "run", images=IMAGES, settings=settings(total_steps=8),
                   overrides={"ttur": 3.0, "lr": 0.05}, resume=True)
    again.prepare()
    assert again.model.opt_g.param_groups[0]["lr"] == pytest.approx(0.05)
    assert again.model.opt_d.param_groups[0]["lr"] == pytest.approx(0.05 * 3.0)
    assert isinstance(again.run_loop(), ev.Finished)
    log = (tmp_path / "run" / "events.log").read_text()
    assert "lr 0.1 -> 0.05" in log and "ttur 2 -> 3" in log


def test_roll_back_halves_one_setting_per_optimizer(tmp_path):
    spec = two_optimizer_spec({"lr": ("g", "d"), "ttur": "d"})
    events: list[ev.Event] = []
    eng = Engine(spec, tmp_path / "run", images=IMAGES, listeners=[events.append],
                 settings=settings(total_steps=14, on_nan="pause"),
                 overrides={"nan_threshold": 0.06, "nan_from": 12})
    eng.listeners.append(lambda e: eng.rollback(0.5) if isinstance(e, ev.Paused) else None)
    eng.prepare()
    assert isinstance(eng.run_loop(), ev.Finished)
    assert eng.config["lr"] == pytest.approx(0.05) and eng.config["ttur"] == 2.0
    assert eng.model.opt_d.param_groups[0]["lr"] == pytest.approx(0.1)   # 0.05 * 2
    nan = next(e for e in events if isinstance(e, ev.Warning) and e.kind == "nan")
    assert nan.settings == {"lr": pytest.approx(0.05)} and nan.action == "rollback"


def test_a_roll_back_without_declared_optimizers_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(FaultyGAN, "optimizers", lambda self: {})
    spec = faulty_spec()
    spec = ModelSpec(id=spec.id, name=spec.name, kind=GAN, schema=spec.schema,
                     factory=FaultyGAN, plugin=PLUGIN)            # no learning_rates either
    events: list[ev.Event] = []
    eng = Engine(spec, tmp_path / "run", images=IMAGES, listeners=[events.append],
                 settings=settings(total_steps=14, on_nan="pause"),
                 overrides={"nan_threshold": 0.06, "nan_from": 12})
    eng.listeners.append(lambda e: eng.rollback(0.5) if isinstance(e, ev.Paused) and
                         e.reason == "nan" and len([x for x in events
                                                    if isinstance(x, ev.Paused)]) == 1
                         else (eng.stop() if isinstance(e, ev.Paused) else None))
    eng.prepare()
    eng.run_loop()
    warned = [e for e in events if isinstance(e, ev.Warning) and e.kind == "rollback"]
    assert warned and "declares no optimizers" in warned[0].message
