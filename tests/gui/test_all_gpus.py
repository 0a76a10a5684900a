"""Device "all GPUs (N)": Start runs the launcher (one process per GPU) in a child process,
the window follows the run live, and Stop ends every process with a checkpoint. On this
CPU-only machine the same path runs with two gloo processes on the CPU."""
from __future__ import annotations

import json
import sys

from ganstudio.gui.launched_run import setting_text, train_command


def test_the_command_line_carries_every_setting():
    argv = train_command("m", "/data", "/runs/r", {"lr": 0.0002, "flip": True, "sizes": [8, 16],
                                                   "aug": None, "name": "a b"},
                         {"total_steps": 500, "precision": "bf16", "sample_every_s": 5.0,
                          "checkpoint_every_s": 120.0}, 4, plugins_dir="/p")
    assert argv[:4] == [sys.executable, "-m", "ganstudio", "train"]
    pairs = dict(zip(argv[4::1], argv[5::1]))
    assert pairs["--model"] == "m" and pairs["--out"] == "/runs/r" and pairs["--steps"] == "500"
    assert pairs["--nproc-per-node"] == "4" and pairs["--device"] == "cuda"
    assert pairs["--precision"] == "bf16" and pairs["--plugins-dir"] == "/p"
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    assert sets == ["lr=0.0002", "flip=true", "sizes=8,16", "aug=auto", "name=a b"]
    assert [setting_text(v) for v in (3, 1e-05, False)] == ["3", "1e-05", "false"]


def test_all_gpus_is_offered_only_with_several_gpus(make_window, tiny_pm):
    w = make_window(pm=tiny_pm, model="tiny", set=[])
    combo = w.model_panel.device
    before = [combo.itemText(i) for i in range(combo.count())]
    w.model_panel.set_gpu_count(1)
    assert [combo.itemText(i) for i in range(combo.count())] == before
    w.model_panel.set_gpu_count(8)
    w.model_panel.set_device("all GPUs (8)")
    assert w.model_panel.device_choice() == ("cuda", 8)
    assert w.model_panel.engine_settings()["device"] == "cuda"
    w.model_panel.set_device("cpu")
    assert w.model_panel.device_choice() == ("cpu", 1)
    w.model_panel.set_device("all GPUs (3)")      # remembered from another machine
    assert w.model_panel.device_choice() == ("cpu", 1) and combo.findText("all GPUs (3)") < 0


def test_a_run_on_two_processes_is_watched_live_and_stops_with_a_checkpoint(
        qtbot, make_window, image_dir, tmp_path):
    w = make_window(data=str(image_dir), steps=1_000_000)   # the built-in DCGAN, tiny
    w.model_panel.sample_every.setValue(0.5)
    w.model_panel.add_process_choice("2 processes (CPU)", "cpu", 2)
    w.model_panel.set_device("2 processes (CPU)")
    assert w.start_training()
    run_dir = w.run_dir
    assert w.trainer.training and w.trainer.state in ("preparing", "running")
    qtbot.waitUntil(lambda: w.viewer.watcher is not None, timeout=120_000)
    assert w.trainer.state == "running"
    qtbot.waitUntil(lambda: any((run_dir / "samples").glob("step_*.png")), timeout=120_000)
    w.pause_training() if hasattr(w, "pause_training") else w.trainer.pause()
    assert w.trainer.state == "running"            # pause is for one-process runs: said
    assert "for runs on one device" in w.statusBar().currentMessage()
    w.stop_training()
    qtbot.waitUntil(lambda: w.trainer.state == "idle", timeout=120_000)
    assert not w.trainer.training and w.viewer.watcher is None
    info = json.loads((run_dir / "run.json").read_text())
    assert info["world_size"] == 2 and info["global_batch"] == 2 * info["config"]["batch_size"]
    assert list((run_dir / "checkpoints").glob("ckpt_*.pt")), "a checkpoint at the stop"
    log = (run_dir / "events.log").read_text()
    assert "rank 1 of 2 joined" in log
    assert "processes stopped" in w.statusBar().currentMessage()
    assert not w.info_bar.isVisible() or "error" not in w.info_bar.label.text()


def test_closing_the_window_stops_every_process_with_a_checkpoint(qtbot, make_window, image_dir):
    w = make_window(data=str(image_dir), steps=1_000_000)
    w.model_panel.add_process_choice("2 processes (CPU)", "cpu", 2)
    w.model_panel.set_device("2 processes (CPU)")
    asked = []
    w.confirm_close = lambda: asked.append(1) or True
    assert w.start_training()
    run_dir, launched = w.run_dir, w.trainer.session.run
    qtbot.waitUntil(lambda: w.viewer.watcher is not None, timeout=120_000)
    qtbot.waitUntil(lambda: (run_dir / "metrics.jsonl").is_file(), timeout=120_000)
    w.close()
    assert asked == [1]
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=120_000)
    assert not launched.running
    assert list((run_dir / "checkpoints").glob("ckpt_*.pt")), "a checkpoint at the close"
