"""The engine: event order, metric accumulation without per-step host syncs, commands from
another thread, checkpoint retention and the run folder contract."""
from __future__ import annotations

import json
import queue
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganstudio.core import events as ev
from ganstudio.core.config import common_gan_fields
from ganstudio.core.engine import Engine, EngineSettings
from ganstudio.core.errors import UserError
from ganstudio.core.model import GAN, GANModel, ModelSpec
from ganstudio.core.runs import RunFolder

# monitors (balance alarm, quality) are tested elsewhere; off here so a slow machine
# cannot add a wall-clock-timed measurement to the exact event sequences checked below
FAST = dict(log_every_s=1e9, sample_every_s=1e9, checkpoint_every_s=0, device="cpu",
            precision="fp32", n_samples=4, monitors=False)


def settings(**kw) -> EngineSettings:
    return EngineSettings(**{**FAST, **kw})


def tiny_images(n: int = 6, res: int = 8, channels: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, channels, res, res), dtype=torch.uint8, generator=g)


class Recorder:
    """Listener that keeps every event and lets another thread wait for one."""

    def __init__(self) -> None:
        self.events: list[ev.Event] = []
        self.queue: "queue.Queue[ev.Event]" = queue.Queue()

    def __call__(self, event: ev.Event) -> None:
        self.events.append(event)
        self.queue.put(event)

    def wait_for(self, kind, timeout: float = 20.0, where=lambda e: True) -> ev.Event:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind.__name__} event within {timeout}s; "
                                     f"got {[type(e).__name__ for e in self.events][-10:]}")
            try:
                event = self.queue.get(timeout=left)
            except queue.Empty:
                continue
            if isinstance(event, kind) and where(event):
                return event

    def kinds(self) -> list[tuple[str, int]]:
        return [(type(e).__name__, getattr(e, "step", -1)) for e in self.events]


# -- event order -----------------------------------------------------------------------------
def test_events_arrive_in_order(tiny_spec, tmp_path):
    rec = Recorder()
    engine = Engine(tiny_spec, tmp_path / "run", images=tiny_images(),
                    settings=settings(total_steps=6, log_every_steps=2, sample_every_steps=3),
                    listeners=[rec])
    result = engine.run_loop()
    assert isinstance(result, ev.Finished) and result.reason == "completed"
    assert rec.kinds() == [
        ("Started", 0), ("Samples", 0), ("Metrics", 2), ("Samples", 3), ("Metrics", 4),
        ("Metrics", 6), ("Samples", 6), ("CheckpointWritten", 6), ("Finished", 6)]
    started = rec.events[0]
    assert started.model_id == "tinygan" and started.total_steps == 6 and not started.resumed
    assert started.device == "cpu" and started.config == engine.config
    metrics = [e for e in rec.events if isinstance(e, ev.Metrics)]
    assert all(set(m.values) == {"loss_d", "loss_g"} for m in metrics)
    assert all(isinstance(v, float) and np.isfinite(v) for m in metrics for v in m.values.values())
    assert all(m.images_per_sec > 0 and m.total_steps == 6 for m in metrics)
    assert [m.time for m in metrics] == sorted(m.time for m in metrics)
    samples = [e for e in rec.events if isinstance(e, ev.Samples)]
    for s in samples:
        # 4 samples of 8 px: a 2x2 grid with 2 px padding -> 22 x 22 x 3 uint8
        assert s.grid.dtype == np.uint8 and s.grid.shape == (22, 22, 3)
        assert Path(s.path).is_file()
    assert result.checkpoint == rec.events[-2].path and Path(result.checkpoint).is_file()


# -- metrics: on-device accumulation, one transfer per logged point --------------------------
class CountingModel(GANModel):
    """Returns the step number as a 'loss' so the logged means can be checked exactly."""

    def __init__(self, config, image_shape, device):
        super().__init__(config, image_shape, device)
        self.latent_dim = 2
        self.n = 0

    def train_step(self, real):
        self.n += 1
        step = torch.tensor(float(self.n), device=self.device)
        return {"step_value": step, "square": step * step + real.sum() * 0}

    @torch.no_grad()
    def sample(self, z):
        c, h, w = self.image_shape
        return torch.zeros(z.shape[0], c, h, w, device=self.device)

    def state_dict(self):
        return {"n": torch.tensor(self.n)}

    def load_state_dict(self, state):
        self.n = int(state["n"])


COUNTING = ModelSpec("counting", "Counting", GAN, common_gan_fields(resolution=8, resolutions=(8,),
                                                                   batch_size=2),
                     CountingModel, plugin="test")


def test_logged_metrics_are_means_since_the_last_point(tmp_path):
    rec = Recorder()
    engine = Engine(COUNTING, tmp_path / "run", images=tiny_images(),
                    settings=settings(total_steps=12, log_every_steps=4), listeners=[rec])
    engine.run_loop()
    metrics = [e for e in rec.events if isinstance(e, ev.Metrics)]
    assert [m.step for m in metrics] == [4, 8, 12]
    assert [m.values["step_value"] for m in metrics] == [2.5, 6.5, 10.5]
    assert metrics[0].values["square"] == pytest.approx((1 + 4 + 9 + 16) / 4)
    rows = [json.loads(line) for line in engine.run.metrics_path.read_text().splitlines()]
    assert [(r["step"], r["step_value"]) for r in rows] == [(4, 2.5), (8, 6.5), (12, 10.5)]


class SometimesModel(CountingModel):
    """Adds 'penalty' (10 x the step) on every third step only, as a lazy regulariser does."""

    def train_step(self, real):
        out = super().train_step(real)
        if self.n % 3 == 0:
            out["penalty"] = out["step_value"] * 10
        return out


def test_a_value_returned_on_some_steps_is_the_mean_of_those_steps(tmp_path):
    spec = ModelSpec("sometimes", "Sometimes", GAN, COUNTING.schema, SometimesModel,
                     plugin="test")
    engine = Engine(spec, tmp_path / "run", images=tiny_images(),
                    settings=settings(total_steps=12, log_every_steps=6))
    assert isinstance(engine.run_loop(), ev.Finished)
    rows = [json.loads(line) for line in engine.run.metrics_path.read_text().splitlines()]
    assert [(r["step"], r["penalty"], r["step_value"]) for r in rows] == \
        [(6, 45.0, 3.5), (12, 105.0, 9.5)]         # (30 + 60) / 2, (90 + 120) / 2


def test_no_host_sync_per_step(tmp_path, monkeypatch):
    """Values reach the host only when a point is logged: one transfer per point."""
    transfers = []
    for name in ("item", "tolist", "__float__", "__int__", "__bool__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *a, _original=original, _name=name, **kw):
            transfers.append(_name)
            return _original(self, *a, **kw)
        monkeypatch.setattr(torch.Tensor, name, counted)
    engine = Engine(COUNTING, tmp_path / "run", images=tiny_images(),
                    settings=settings(total_steps=40, log_every_steps=20,
                                      checkpoint_every_s=0))
    engine.prepare()
    transfers.clear()
    result = engine.run_loop()
    assert isinstance(result, ev.Finished)
    # 40 steps, 2 logged points: exactly 2 host transfers, not 40
    assert transfers == ["tolist", "tolist"]


# -- commands from another thread ------------------------------------------------------------
def test_pause_resume_checkpoint_now_and_stop_from_another_thread(tiny_spec, tmp_path):
    rec = Recorder()
    engine = Engine(tiny_spec, tmp_path / "run", images=tiny_images(),
                    settings=settings(total_steps=10**8, log_every_s=0.02), listeners=[rec])
    engine.prepare()
    results: list = []
    worker = threading.Thread(target=lambda: results.append(engine.run_loop()), daemon=True)
    worker.start()
    try:
        rec.wait_for(ev.Metrics)
        engine.pause()
        paused = rec.wait_for(ev.Paused)
        assert engine.is_paused and paused.reason == "user"
        held = engine.step
        assert held == paused.step
        time.sleep(0.3)
        assert engine.step == held  # no training while paused

        engine.checkpoint_now()  # served while paused
        ck = rec.wait_for(ev.CheckpointWritten)
        assert ck.step == held and Path(ck.path).is_file()
        assert engine.step == held

        engine.resume()
        resumed = rec.wait_for(ev.Resumed)
        assert resumed.step == held
        rec.wait_for(ev.Metrics, where=lambda e: e.step > held)
        assert not any(isinstance(e, ev.Metrics) and e.step > held
                       for e in rec.events[:rec.events.index(resumed)])

        engine.checkpoint_now()  # served between steps while running
        ck2 = rec.wait_for(ev.CheckpointWritten)
        assert ck2.step > held

        engine.stop()
        worker.join(timeout=20)
        assert not worker.is_alive()
    finally:
        engine.stop()
        worker.join(timeout=20)
    (result,) = results
    assert isinstance(result, ev.Finished) and result.reason == "stopped"
    assert 0 < result.step < 10**8 and result.step == engine.step
    assert result.checkpoint and Path(result.checkpoint).is_file()
    assert isinstance(rec.events[-1], ev.Finished)


def test_stop_while_paused_ends_the_run(tiny_spec, tmp_path):
    rec = Recorder()
    engine = Engine(tiny_spec, tmp_path / "run", images=tiny_images(),
                    settings=settings(total_steps=10**8, log_every_s=0.02), listeners=[rec])
    engine.pause()  # paused before the first step
    worker = threading.Thread(target=engine.run_loop, daemon=True)
    worker.start()
    paused = rec.wait_for(ev.Paused)
    assert paused.step == 0
    engine.stop()
    done = rec.wait_for(ev.Finished)
    worker.join(timeout=20)
    assert done.reason == "stopped" and done.step == 0 and not worker.is_alive()


# -- checkpoints -----------------------------------------------------------------------------
def test_keeps_the_last_n_checkpoints(tiny_spec, tmp_path):
    rec = Recorder()
    engine = Engine(tiny_spec, tmp_path / "run", images=tiny_images(),
                    settings=settings(total_steps=10, checkpoint_every_steps=2,
                                      keep_checkpoints=3), listeners=[rec])
    engine.run_loop()
    written = [e.step for e in rec.events if isinstance(e, ev.CheckpointWritten)]
    assert written == [2, 4, 6, 8, 10]
    names = sorted(p.name for p in engine.run.checkpoints_dir.iterdir())
    assert names == ["ckpt_00000006.pt", "ckpt_00000008.pt", "ckpt_00000010.pt"]


def test_a_broken_listener_does_not_stop_training(tiny_spec, tmp_path):
    def broken(event):
        raise RuntimeError("listener bug")
    engine = Engine(tiny_spec, tmp_path / "run", images=tiny_images(),
                    settings=settings(total_steps=3), listeners=[broken])
    result = engine.run_loop()
    assert isinstance(result, ev.Finished) and result.step == 3
    assert "listener bug" in engine.run.events_path.read_text()


# -- the run folder contract -----------------------------------------------------------------
def test_run_folder_contract(tiny_spec, plugin_manager, tmp_path, image_folder):
    (image_folder / "broken.png").write_bytes(b"not a png")
    run_dir = tmp_path / "run"
    engine = Engine(tiny_spec, run_dir, data_folder=image_folder, overrides={"batch_size": 3},
                    settings=settings(total_steps=8, log_every_steps=2, sample_every_steps=4,
                                      n_samples=9),
                    plugin_version=plugin_manager.plugin_version(tiny_spec))
    result = engine.run_loop()
    assert isinstance(result, ev.Finished) and result.reason == "completed"
    # hidden bookkeeping files (e.g. a lock) are not part of the contract
    assert sorted(p.name for p in run_dir.iterdir() if not p.name.startswith(".")) == [
        "checkpoints", "events.log", "metrics.jsonl", "run.json", "samples"]

    info = json.loads((run_dir / "run.json").read_text())
    assert info["model_id"] == "tinygan" and info["plugin"] == "tinyplugin"
    assert info["plugin_version"] == "0.0.1" and info["kind"] == "gan"
    assert info["config"]["batch_size"] == 3 and info["config"]["resolution"] == 8
    assert info["config"] == engine.config
    assert info["device"] == "cpu" and info["total_steps"] == 8
    assert isinstance(info["created"], str) and info["created"][:2] == "20"
    ds = info["dataset"]
    assert ds["images"] == 12 and ds["folder"] == str(image_folder.resolve())
    assert [Path(s["path"]).name for s in ds["skipped"]] == ["broken.png"]

    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6, 8]
    for r in rows:
        assert isinstance(r["step"], int) and isinstance(r["time"], float)
        assert isinstance(r["loss_d"], float) and isinstance(r["loss_g"], float)

    samples = sorted(p.name for p in (run_dir / "samples").iterdir())
    assert samples == ["step_00000000.png", "step_00000004.png", "step_00000008.png"]
    with Image.open(run_dir / "samples" / "step_00000008.png") as img:
        assert img.size == (32, 32) and img.mode == "RGB"  # 3x3 cells of 8 px + padding
    assert engine.run.list_samples()[-1][0] == 8

    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["ckpt_00000008.pt"]

    log = (run_dir / "events.log").read_text()
    assert "model tinygan" in log and "dataset: 12 images" in log
    assert "WARNING" in log and "broken.png" in log
    assert "completed at step 8" in log


def test_existing_run_needs_resume_and_the_same_model(tiny_spec, tmp_path):
    run_dir = tmp_path / "run"
    Engine(tiny_spec, run_dir, images=tiny_images(), settings=settings(total_steps=2)).run_loop()
    with pytest.raises(UserError, match="already holds a run; resume it"):
        Engine(tiny_spec, run_dir, images=tiny_images(), settings=settings(total_steps=4)).prepare()
    with pytest.raises(UserError, match="holds a 'tinygan' run, not 'counting'"):
        Engine(COUNTING, run_dir, images=tiny_images(), settings=settings(total_steps=4),
               resume=True).prepare()
    resumed = Engine(tiny_spec, run_dir, images=tiny_images(), settings=settings(total_steps=4),
                     resume=True)
    resumed.prepare()
    assert resumed.step == 2 and resumed.resumed_from.name == "ckpt_00000002.pt"


# -- on a GPU: the per-step path never synchronises with the host -----------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_no_host_sync_inside_the_step_on_cuda(tmp_path):
    """With CUDA's sync debug mode set to "error" around the batch draw and the model
    step, any hidden synchronisation (``.item()``, a host read, a pageable copy) raises."""
    from ganstudio.plugins import PluginManager
    spec = PluginManager(load_folder=False).get_model("dcgan")
    engine = Engine(spec, tmp_path / "run", images=tiny_images(n=64, res=32),
                    overrides={"resolution": 32, "batch_size": 32},
                    settings=EngineSettings(total_steps=60, log_every_s=1e9, log_every_steps=20,
                                            sample_every_s=1e9, checkpoint_every_s=0,
                                            device="cuda", n_samples=4))
    engine.prepare()

    guarded_calls = []

    def guarded(fn):
        calls = []

        def wrapper(*a, **kw):
            calls.append(1)
            if len(calls) <= 2:  # warm-up steps: cuDNN autotuning may synchronise once
                return fn(*a, **kw)
            guarded_calls.append(1)
            torch.cuda.set_sync_debug_mode("error")
            try:
                return fn(*a, **kw)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return wrapper

    engine.model.train_step = guarded(engine.model.train_step)
    engine.data.batch = guarded(engine.data.batch)
    result = engine.run_loop()
    assert isinstance(result, ev.Finished), getattr(result, "message", result)
    assert len(guarded_calls) == 2 * (60 - 2)
    assert result.step == 60
    rows = [json.loads(line) for line in engine.run.metrics_path.read_text().splitlines()]
    assert [r["step"] for r in rows] == [20, 40, 60]
    assert all(np.isfinite(r["loss_d"]) and np.isfinite(r["loss_g"]) for r in rows)


# -- devices ---------------------------------------------------------------------------------
def test_pick_device_names_the_choice_and_the_reason(monkeypatch):
    from ganstudio.core.devices import pick_device
    monkeypatch.setenv("GANSTUDIO_CPU_BF16", "0")     # as on a CPU without AMX
    cpu = pick_device("cpu")
    assert cpu.device == torch.device("cpu") and cpu.reason == "requested"
    assert cpu.autocast_dtype is None and cpu.name == "cpu"
    assert pick_device(" CPU ", precision="bf16").autocast_dtype == torch.bfloat16
    auto = pick_device("auto")
    if torch.cuda.is_available():
        assert auto.device.type == "cuda" and "CUDA GPU is available" in auto.reason
    elif auto.device.type == "cpu":
        assert auto.reason == "auto: no GPU found, using the CPU"
    for bad, fragment in (("tpu", "unknown device 'tpu'"), ("cudax", "cuda"),
                          ("cuda:99", "cuda"), ("mps", "mps")):
        if bad == "mps" and auto.device.type == "mps":
            continue
        with pytest.raises(UserError, match=fragment):
            pick_device(bad)
    with pytest.raises(UserError, match="unknown precision 'fp8'"):
        pick_device("cpu", precision="fp8")


def test_auto_precision_on_a_cpu_follows_its_bf16_hardware(monkeypatch):
    from ganstudio.core.devices import cpu_has_fast_bf16, pick_device
    monkeypatch.setenv("GANSTUDIO_CPU_BF16", "1")     # as on a CPU with AMX
    amx = pick_device("cpu")
    assert amx.autocast_dtype == torch.bfloat16 and "AMX" in amx.reason
    assert amx.precision == "bf16" and pick_device("cpu", precision="fp32").precision == "fp32"
    assert pick_device("cpu", precision="fp32").autocast_dtype is None   # asked: obeyed
    monkeypatch.setenv("GANSTUDIO_CPU_BF16", "0")
    assert pick_device("cpu").autocast_dtype is None and not cpu_has_fast_bf16()
    monkeypatch.delenv("GANSTUDIO_CPU_BF16")
    detected = cpu_has_fast_bf16()
    assert detected == bool(torch.cpu._is_amx_tile_supported())
    assert (pick_device("cpu").autocast_dtype == torch.bfloat16) == detected


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_pick_device_refuses_a_gpu_index_that_does_not_exist():
    from ganstudio.core.devices import pick_device
    n = torch.cuda.device_count()
    assert pick_device(f"cuda:{n - 1}").device == torch.device(f"cuda:{n - 1}")
    with pytest.raises(UserError, match=f"does not exist; this machine has {n} CUDA GPU"):
        pick_device(f"cuda:{n}")


def test_starting_over_in_a_run_that_never_saved_keeps_its_traces_aside(tiny_spec, tmp_path):
    run_dir = tmp_path / "run"
    first = Engine(tiny_spec, run_dir, images=tiny_images(),
                   settings=settings(total_steps=6, log_every_steps=2, sample_every_steps=3))
    first.run_loop()
    for ckpt in first.run.checkpoints_dir.iterdir():  # as if killed before its first save
        ckpt.unlink()
    before = (run_dir / "metrics.jsonl").read_bytes()
    for resume in (False, True):  # neither a new start nor a resume may drop the history
        with pytest.raises(UserError, match="start it over"):
            Engine(tiny_spec, run_dir, images=tiny_images(), resume=resume,
                   settings=settings(total_steps=4)).prepare()
    assert (run_dir / "metrics.jsonl").read_bytes() == before
    again = Engine(tiny_spec, run_dir, images=tiny_images(), restart=True,
                   settings=settings(total_steps=4, log_every_steps=4, sample_every_steps=4))
    again.run_loop()
    assert [s for s, _ in again.run.list_samples()] == [0, 4]
    rows, _ = again.run.read_metrics()
    assert [r["step"] for r in rows] == [4]
    old = RunFolder(again.history_moved_to)  # the old traces, kept as a run folder
    assert old.path.parent == run_dir and old.path.name.startswith("previous-")
    assert (old.path / "metrics.jsonl").read_bytes() == before
    assert [s for s, _ in old.list_samples()] == [0, 3, 6]
    assert old.read_info()["model_id"] == tiny_spec.id
