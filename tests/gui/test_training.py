"""Training from the window: the real buttons, the worker's signals, chart and grid values,
a heartbeat that measures GUI stalls, errors with their offered fixes, and closing mid-run."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QElapsedTimer, Qt, QTimer

from ganstudio.core.runs import RunFolder
from ganstudio.gui.tasks import running_threads


class Heartbeat:
    """A GUI-thread timer; the longest gap between ticks is the longest stall."""

    def __init__(self, interval_ms: int = 10):
        self.clock = QElapsedTimer()
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.last = 0
        self.longest_ms = 0
        self.ticks = 0

    def start(self):
        self.clock.start()
        self.last = 0
        self.timer.start()

    def _tick(self):
        now = self.clock.elapsed()
        self.longest_ms = max(self.longest_ms, now - self.last)
        self.last = now
        self.ticks += 1

    def stop(self):
        self.timer.stop()


def click(qtbot, window, key):
    button = window.buttons[key]
    assert button.isEnabled(), f"{key} button is disabled in state {window.state}"
    qtbot.mouseClick(button, Qt.LeftButton)


def steps_seen(window) -> int:
    s = window.chart.series.get("loss_g")
    return int(s.xs[-1]) if s is not None and s.n else -1


def test_buttons_drive_training_and_views_show_real_values(qtbot, tiny_window):
    w = tiny_window()
    beat = Heartbeat()
    beat.start()
    assert not w.buttons["pause"].isEnabled() and w.buttons["start"].isEnabled()
    with qtbot.waitSignal(w.stateChanged, timeout=5000):
        click(qtbot, w, "start")
    assert w.session is not None and w.session.running
    qtbot.waitUntil(lambda: w.state == "running", timeout=30_000)
    qtbot.waitUntil(lambda: w.events_seen.get("metrics", 0) >= 3
                    and w.events_seen.get("samples", 0) >= 2, timeout=30_000)

    # pause through the button: training stops advancing
    click(qtbot, w, "pause")
    qtbot.waitUntil(lambda: w.state == "paused", timeout=10_000)
    assert w.buttons["resume"].isEnabled() and not w.buttons["pause"].isEnabled()
    paused_at = steps_seen(w)
    qtbot.wait(400)
    assert steps_seen(w) == paused_at
    # checkpoint now works while paused (waiting in the GUI thread, where events land)
    click(qtbot, w, "checkpoint")
    qtbot.waitUntil(lambda: w.events_seen.get("checkpoint", 0) == 1, timeout=10_000)
    assert (w.run_dir / "checkpoints" / f"ckpt_{paused_at:08d}.pt").is_file()
    # resume: steps advance again
    click(qtbot, w, "resume")
    qtbot.waitUntil(lambda: w.state == "running", timeout=10_000)
    qtbot.waitUntil(lambda: steps_seen(w) > paused_at + 5, timeout=20_000)
    # stop: the thread ends and a final checkpoint is written
    job = w.session.handle          # the training job: its thread must end
    click(qtbot, w, "stop")
    qtbot.waitUntil(lambda: w.state == "idle" and w.session is None, timeout=20_000)
    beat.stop()
    done = w.last_finished
    assert done.reason == "stopped"
    assert not job.alive
    qtbot.waitUntil(lambda: not running_threads(), timeout=10_000)
    run = RunFolder(w.run_dir)
    ckpts = sorted(p.name for p in run.checkpoints_dir.iterdir())
    assert f"ckpt_{done.step:08d}.pt" in ckpts

    # the chart holds exactly what the engine logged
    rows, _ = run.read_metrics(0)
    logged = {r["step"]: r["loss_d"] for r in rows}
    series = w.chart.series["loss_d"]
    assert series.n == len(rows) >= 4
    for x, y in zip(series.xs, series.ys):
        assert logged[int(x)] == pytest.approx(y, rel=1e-6)
    assert w.status_labels["step"].text().startswith(f"step {rows[-1]['step']:,}")
    # the grid on screen is the last grid saved in the run
    step, path = run.list_samples()[-1]
    assert w.samples.current_step == step
    saved = np.asarray(Image.open(path).convert("RGB"))
    assert np.array_equal(w.samples.current_array, saved)
    # the GUI thread never stalled for long while training ran
    assert beat.ticks > 20
    assert beat.longest_ms < 1500, f"GUI stalled for {beat.longest_ms} ms"


def test_keyboard_shortcuts_start_and_stop(qtbot, tiny_window):
    w = tiny_window()
    w.activateWindow()
    qtbot.waitUntil(lambda: w.isActiveWindow(), timeout=5000)
    qtbot.keyClick(w, Qt.Key_F5)
    qtbot.waitUntil(lambda: w.state == "running", timeout=30_000)
    qtbot.keyClick(w, Qt.Key_F6)
    qtbot.waitUntil(lambda: w.state == "paused", timeout=10_000)
    qtbot.keyClick(w, Qt.Key_F5, Qt.ShiftModifier)
    qtbot.waitUntil(lambda: w.state == "idle", timeout=20_000)
    assert w.events_seen.get("finished") == 1


def test_closing_mid_run_stops_checkpoints_and_joins(qtbot, tiny_window):
    w = tiny_window()
    asked = []
    w.confirm_close = lambda: asked.append(1) or True
    w.start_training()
    qtbot.waitUntil(lambda: w.events_seen.get("metrics", 0) >= 2, timeout=30_000)
    job = w.session.handle          # the training job: its thread must end
    w.close()
    assert asked == [1]
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=30_000)
    assert not job.alive
    qtbot.waitUntil(lambda: not running_threads(), timeout=10_000)
    run = RunFolder(w.run_dir)
    assert run.has_checkpoint()
    last = sorted(run.checkpoints_dir.iterdir())[-1]
    rows, _ = run.read_metrics(0)
    assert last.name == f"ckpt_{rows[-1]['step']:08d}.pt"
    assert "stopped at step" in run.events_path.read_text()


def test_declining_close_keeps_training(qtbot, tiny_window):
    w = tiny_window()
    w.confirm_close = lambda: False
    w.start_training()
    qtbot.waitUntil(lambda: w.state == "running", timeout=30_000)
    w.close()
    assert w.isVisible() and w.training
    w.stop_training()
    qtbot.waitUntil(lambda: w.state == "idle", timeout=20_000)


def test_nan_pauses_and_rollback_lowers_learning_rate(qtbot, tiny_window):
    w = tiny_window(set=["nan_at=6"])
    base = w.model_panel.engine_settings
    w.model_panel.engine_settings = lambda: {**base(), "checkpoint_every_steps": 2,
                                             "log_every_steps": 1, "log_every_s": 1e9}
    w.start_training()
    qtbot.waitUntil(lambda: w.state == "paused" and w.info_bar.kind == "nan", timeout=30_000)
    assert [m[1] for m in w.chart.markers] == ["nan"]
    nan_step = w.chart.markers[0][0]
    assert nan_step == 6
    button = w.info_bar.buttons["Roll back to last checkpoint with lower learning rate"]
    qtbot.mouseClick(button, Qt.LeftButton)
    qtbot.waitUntil(lambda: w.state == "running", timeout=10_000)
    qtbot.waitUntil(lambda: steps_seen(w) > nan_step + 5, timeout=20_000)
    model = w.session.worker.engine.model
    assert model.opt.param_groups[0]["lr"] == pytest.approx(0.005)
    info = json.loads((w.run_dir / "run.json").read_text())
    assert info["config"]["lr"] == pytest.approx(0.005)
    assert np.isfinite(w.chart.series["loss_d"].ys[-1])
    w.stop_training()
    qtbot.waitUntil(lambda: w.state == "idle", timeout=20_000)


def test_out_of_memory_offers_smaller_batch_and_resumes(qtbot, tiny_window):
    w = tiny_window(set=["max_batch=4"])
    w.start_training()
    qtbot.waitUntil(lambda: w.state == "idle" and w.events_seen.get("failed"), timeout=30_000)
    assert w.info_bar.isVisible() and "out of memory" in w.info_bar.label.text()
    assert w.isVisible()  # the app stays up
    run_dir = w.run_dir
    button = w.info_bar.buttons["Apply batch_size = 4 and resume"]
    qtbot.mouseClick(button, Qt.LeftButton)
    assert w.model_panel.form.values()["batch_size"] == 4
    qtbot.waitUntil(lambda: w.events_seen.get("metrics", 0) >= 2, timeout=30_000)
    assert w.run_dir == run_dir
    assert json.loads((run_dir / "run.json").read_text())["config"]["batch_size"] == 4
    w.stop_training()
    qtbot.waitUntil(lambda: w.state == "idle", timeout=20_000)


def test_bad_folder_is_a_message_not_a_crash(qtbot, tiny_window, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    w = tiny_window(data=str(empty))
    w.start_training()
    qtbot.waitUntil(lambda: w.state == "idle" and w.events_seen.get("failed"), timeout=30_000)
    assert "image files" in w.info_bar.label.text() and str(empty) in w.info_bar.label.text()
    # no run was written: the message must not point at a run folder
    assert not RunFolder(w.run_dir).exists() and "run folder keeps" not in \
        w.info_bar.label.text()
    oom = tiny_window(set=["max_batch=4"])
    oom.start_training()
    qtbot.waitUntil(lambda: oom.state == "idle" and oom.events_seen.get("failed"),
                    timeout=30_000)
    assert oom.run_dir.exists() and "run folder keeps" in oom.info_bar.label.text()
