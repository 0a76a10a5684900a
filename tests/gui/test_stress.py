"""Start / stop / close cycles in a loop: no QThread left running, no engine (and so no
model or device memory) kept alive, no stray threads or processes.

100 cycles of the cheapest meaningful one (a real TrainingWorker on its QThread,
driving a real engine on a tiny model: prepare, train, stop, final checkpoint,
join), varied in when the stop arrives; then a few cycles through the window
itself: start and stop, switch to another run, close mid-run.
"""
from __future__ import annotations

import gc
import os
import threading
import weakref
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
worker_mod = pytest.importorskip("ganstudio.gui.worker")

from PySide6.QtCore import QObject, Slot  # noqa: E402

from ganstudio.gui.tasks import running_threads  # noqa: E402

CYCLES = 100


def child_processes() -> list[int]:
    """Live child processes of this process (Linux /proc; empty elsewhere)."""
    me, out = os.getpid(), []
    if not os.path.isdir("/proc"):
        return out
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me and fields[0] not in (b"Z", b"X"):
            out.append(int(entry))
    return out


def os_thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


class Collector(QObject):
    """Lives in the GUI thread, so worker signals reach it queued, as they reach the window."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list = []

    @Slot(object)
    def take(self, event) -> None:
        self.events.append(event)

    def has(self, kind) -> bool:
        return any(isinstance(e, kind) for e in self.events)


def device_memory() -> int:
    import torch
    return torch.cuda.memory_allocated() if torch.cuda.is_available() else 0


def _tiny_pm(module):
    from ganstudio.plugins import PluginManager
    pm = PluginManager(load_entry_points=False, load_folder=False,
                       extra=[("tinyplugin", module)])
    assert pm.plugins["tinyplugin"].status == "ok"
    return pm


def _engine_settings() -> dict:
    from ganstudio.core.engine import EngineSettings
    # GANSTUDIO_STRESS_DEVICE=cuda runs the cycles on the GPU (the leak check then
    # compares torch.cuda.memory_allocated() before and after).
    device = os.environ.get("GANSTUDIO_STRESS_DEVICE", "cpu")
    s = dict(total_steps=10**7, device=device, checkpoint_every_s=0, sample_every_s=1e9,
             n_samples=4, keep_checkpoints=2)
    if "monitors" in EngineSettings.__dataclass_fields__:
        s["monitors"] = False
    return s


def test_hundred_worker_start_stop_cycles_leave_nothing_running(
        qtbot, tmp_path, image_dir, tiny_plugin_module):
    from ganstudio.core import events as ev
    pm = _tiny_pm(tiny_plugin_module)
    spec = pm.get_model("tinygan")
    engines: list[weakref.ref] = []
    outcomes: dict[str, int] = {}

    for i in range(CYCLES):
        run_dir = tmp_path / "runs" / f"run{i // 2}"
        resume = i % 2 == 1  # every second cycle switches back to the run just stopped
        worker = worker_mod.TrainingWorker(
            spec, run_dir, data_folder=image_dir, overrides={"resolution": 8},
            settings=_engine_settings(), resume=resume, plugin_manager=pm)
        got = Collector()
        for name in ("started", "paused", "checkpoint", "finished", "failed"):
            getattr(worker, name).connect(got.take)
        session = worker_mod.TrainingSession(worker)
        mode = i % 4
        if mode == 0:
            worker.stop()                      # before the thread even starts
            session.start()
        else:
            session.start()
            qtbot.waitUntil(lambda: got.has(ev.Started), timeout=30_000)
            if mode == 2:
                worker.pause()
                qtbot.waitUntil(lambda: got.has(ev.Paused), timeout=30_000)
            elif mode == 3:
                worker.checkpoint_now()
                qtbot.waitUntil(lambda: got.has(ev.CheckpointWritten), timeout=30_000)
            worker.stop()
        assert session.join(30_000), f"cycle {i}: the training thread did not end"
        qtbot.waitUntil(lambda: got.has(ev.Finished) or got.has(ev.Failed),
                        timeout=10_000)  # queued signals delivered
        assert not session.running
        end = got.events[-1]
        assert isinstance(end, ev.Finished), f"cycle {i}: {getattr(end, 'message', end)}"
        assert end.reason == "stopped" and end.checkpoint and Path(end.checkpoint).exists()
        outcomes[end.reason] = outcomes.get(end.reason, 0) + 1
        engines.append(weakref.ref(worker.engine))
        del worker, session, got, end
        if i == 0:
            # Baselines after one cycle: libraries start their own pools (OpenMP, the
            # CUDA context) on first use; what must not grow is what each cycle adds.
            gc.collect()
            threads_before = {t.ident for t in threading.enumerate()}
            os_threads_before = os_thread_count()
            children_before = set(child_processes())
            memory_before = device_memory()

    assert outcomes == {"stopped": CYCLES}
    assert running_threads() == []
    gc.collect()
    alive = [r for r in engines if r() is not None]
    assert len(alive) == 0, f"{len(alive)} engines (models, optimizers, data) still alive"
    # (QThreads that once called into Python leave inert "Dummy" entries in threading's
    # table; the OS thread count is what says whether a thread still exists.)
    stray = {t.name for t in threading.enumerate() if t.ident not in threads_before
             and not isinstance(t, threading._DummyThread)}
    assert not stray, f"threads left behind: {stray}"
    assert os_thread_count() <= os_threads_before
    assert set(child_processes()) == children_before
    assert device_memory() <= memory_before


def test_window_start_stop_switch_and_close_mid_run(qtbot, make_window, image_dir,
                                                    tiny_plugin_module, tmp_path):
    pm = _tiny_pm(tiny_plugin_module)
    w = make_window(pm=pm, model="tinygan", set=["resolution=8"])
    w.model_panel.engine_settings = _engine_settings  # endless runs, stopped by the test
    w.dataset_panel.set_folder(str(image_dir))
    runs = []
    for _ in range(3):
        assert w.start_training()
        qtbot.waitUntil(lambda: w.state == "running", timeout=30_000)
        runs.append(w.run_dir)
        w.stop_training()
        qtbot.waitUntil(lambda: w.state == "idle", timeout=30_000)
        assert w.session is None
        # short background jobs (the run list refresh) end on their own; nothing stays
        qtbot.waitUntil(lambda: running_threads() == [], timeout=10_000)
    # switch: resume the first run again, stop, resume the second
    for run_dir in (runs[0], runs[1]):
        assert w.resume_run(run_dir)
        qtbot.waitUntil(lambda: w.state == "running", timeout=30_000)
        assert w.run_dir == run_dir
        w.stop_training()
        qtbot.waitUntil(lambda: w.state == "idle", timeout=30_000)
    # close mid-run: the window stops the run, saves a checkpoint, joins, then closes
    assert w.start_training()
    qtbot.waitUntil(lambda: w.state == "running", timeout=30_000)
    last = w.run_dir
    w.close()
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=30_000)
    qtbot.waitUntil(lambda: running_threads() == [], timeout=10_000)
    from ganstudio.core.checkpoints import list_checkpoints, verify_checkpoint
    ckpts = list_checkpoints(Path(last) / "checkpoints")
    assert ckpts and verify_checkpoint(ckpts[-1]) is None
    assert not child_processes()
