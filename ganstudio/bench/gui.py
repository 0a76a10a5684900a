"""The engine inside the studio's worker thread, and the GUI thread's heartbeat.

The same training as the headless run is started through
``ganstudio.gui.worker.TrainingWorker`` as a studio job on its own thread, while the GUI thread
runs an event loop with a receiver that does what the studio's views do with
each event (keep the metrics, turn each sample grid into a QImage) and a
10 ms heartbeat timer. Reported: images/s in the worker, its ratio to the
headless run, and the heartbeat's longest gap (a stall of the GUI thread:
the time beyond the 10 ms period during which the window could not repaint
or react).
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

HEARTBEAT_MS = 10


def _available(module: str) -> bool:
    """Whether ``module`` can be imported here (a broken install counts as absent)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _qt_cannot_start() -> str:
    """Why a QApplication cannot be made here ("" if it can), asked of a child process:
    Qt aborts the whole process when its platform plugin cannot load."""
    import subprocess
    import sys
    try:
        from PySide6.QtWidgets import QApplication
        if QApplication.instance() is not None:
            return ""
    except ImportError as e:
        return f"PySide6 cannot be imported ({e})"
    code = "from PySide6.QtWidgets import QApplication; QApplication([])"
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=60)
    except subprocess.TimeoutExpired:
        return "a Qt application could not start within 60 s"
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no message"])[-1][:200]
        return f"a Qt application cannot start here ({tail})"
    return ""


def measure_gui(spec: Any, data: Path, work: Path, overrides: dict, *, device: str,
                steps: int, warmup_steps: int, cache_dir: Path,
                headless: dict | None, monitors: bool = False,
                timeout_s: float = 600.0) -> dict[str, Any]:
    if not _available("PySide6"):
        return {"skipped": "PySide6 is not installed (no studio here)"}
    if not _available("ganstudio.gui.worker"):
        return {"skipped": "the studio's training worker (ganstudio/gui/worker.py) is absent"}
    if headless is None:
        return {"skipped": "no headless engine run at the same batch size to compare with"}
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    problem = _qt_cannot_start()
    if problem:
        return {"skipped": problem}

    from PySide6.QtCore import QElapsedTimer, QEventLoop, QObject, Qt, QTimer, Slot
    from PySide6.QtGui import QImage
    from PySide6.QtWidgets import QApplication

    from ganstudio.gui.worker import TrainingSession, TrainingWorker

    from .engine_runs import ThroughputProbe, engine_settings

    app = QApplication.instance() or QApplication([])
    run_dir = work / "run-gui"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    precision = str(headless.get("precision", "fp32"))
    settings = asdict(engine_settings(steps, warmup_steps, device, precision, monitors))

    class Receiver(QObject):
        """Lives in the GUI thread: the work the studio's views do per event."""

        def __init__(self) -> None:
            super().__init__()
            self.metrics: list[Any] = []
            self.images: list[QImage] = []
            self.failed: Any = None

        @Slot(object, object)
        def on_metrics(self, event, memory) -> None:
            self.metrics.append((event.step, dict(event.values), memory))

        @Slot(object)
        def on_samples(self, event) -> None:
            grid = event.grid
            h, w, c = grid.shape
            fmt = QImage.Format.Format_RGB888 if c == 3 else QImage.Format.Format_Grayscale8
            self.images.append(QImage(grid.tobytes(), w, h, w * c, fmt).copy())
            del self.images[:-2]

        @Slot(object)
        def on_failed(self, event) -> None:
            self.failed = event

    class Heartbeat(QObject):
        def __init__(self) -> None:
            super().__init__()
            self.clock = QElapsedTimer()
            self.gaps_ms: list[float] = []
            self.ticks: list[float] = []      # perf_counter() at each tick
            self.timer = QTimer(self)
            self.timer.setTimerType(Qt.TimerType.PreciseTimer)
            self.timer.setInterval(HEARTBEAT_MS)
            self.timer.timeout.connect(self.tick)

        def start(self) -> None:
            self.clock.start()
            self.timer.start()

        @Slot()
        def tick(self) -> None:
            self.gaps_ms.append(self.clock.nsecsElapsed() / 1e6)
            self.ticks.append(time.perf_counter())
            self.clock.restart()

    receiver = Receiver()
    heartbeat = Heartbeat()
    probe = ThroughputProbe()
    # Timestamps are taken in the training thread, at the moment the engine emits.
    worker = TrainingWorker(spec, run_dir, data_folder=data, overrides=overrides,
                            settings=settings, cache_dir=str(cache_dir), listeners=[probe])
    worker.failed.connect(probe)     # a failure while preparing, before the engine runs
    worker.metrics.connect(receiver.on_metrics)
    worker.samples.connect(receiver.on_samples)
    worker.failed.connect(receiver.on_failed)

    session = TrainingSession(worker)
    loop = QEventLoop()
    worker.done.connect(loop.quit)
    guard = QTimer()
    guard.setSingleShot(True)
    guard.timeout.connect(worker.stop)
    guard.start(int(timeout_s * 1000))
    t0 = time.perf_counter()
    heartbeat.start()
    session.start()
    loop.exec()  # a done emitted before this line is queued and still ends the loop
    heartbeat.timer.stop()
    guard.stop()
    joined = session.join(60_000)
    wall = time.perf_counter() - t0
    app.processEvents()

    images, seconds = probe.measure(warmup_steps, int(headless["batch_size"]))
    ips = images / seconds if seconds > 0 else 0.0
    gaps = heartbeat.gaps_ms[1:] or [0.0]
    longest = max(gaps)
    # The same, only while training (first to last metrics point): preparing the data and
    # the final checkpoint are outside it.
    training = [0.0]
    if len(probe.points) >= 2:
        t_first, t_last = probe.points[0][0], probe.points[-1][0]
        training += [g for g, t in zip(heartbeat.gaps_ms[1:], heartbeat.ticks[1:])
                     if t_first <= t <= t_last]
    out: dict[str, Any] = {
        "images_per_s": ips, "images": images, "seconds": seconds,
        "headless_images_per_s": headless["images_per_s"],
        "ratio_vs_headless": ips / headless["images_per_s"] if headless["images_per_s"] else None,
        "heartbeat_ms": HEARTBEAT_MS, "heartbeat_ticks": len(heartbeat.gaps_ms),
        "longest_gap_ms": longest, "longest_stall_ms": max(0.0, longest - HEARTBEAT_MS),
        "longest_stall_training_ms": max(0.0, max(training) - HEARTBEAT_MS),
        "gaps_over_50ms": sum(1 for g in gaps if g > 50.0),
        "metrics_received": len(receiver.metrics), "wall_s": wall,
        "thread_joined": bool(joined), "precision": precision,
    }
    if receiver.failed is not None:
        out["error"] = getattr(receiver.failed, "message", str(receiver.failed))
    return out
