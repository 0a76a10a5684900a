"""Run folders in the studio: watch a run another process writes, browse past runs,
open and resume one, and export from it."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from ganstudio.core.images import save_png
from ganstudio.core.runs import RunFolder


def test_watch_follows_a_run_written_elsewhere(qtbot, tiny_window, tmp_path):
    w = tiny_window()
    run = RunFolder(tmp_path / "remote")
    run.create({"model_id": "tiny", "config": {}, "total_steps": 100, "device": "cuda (H100)"})
    run.append_metrics([{"step": 1, "time": 0.5, "loss_d": 1.0, "loss_g": 2.0},
                        {"step": 2, "time": 1.0, "loss_d": 0.9, "loss_g": 1.8,
                         "resolution": 8, "alpha": 0.25, "phase": 1, "phase_progress": 0.5}])
    save_png(np.zeros((10, 10, 3), np.uint8), run.sample_path(2))
    assert w.watch_run(run.path, interval_ms=50)
    qtbot.waitUntil(lambda: "loss_d" in w.chart.series and w.samples.current_step == 2,
                    timeout=10_000)
    assert w.status_labels["progress"].text() == "phase 1 · 8×8 px · α 0.25 · 50% of phase"
    assert w.status_labels["device"].text() == "cuda (H100)"
    # the other process goes on writing: a torn last line waits for its newline
    with open(run.metrics_path, "a") as f:
        f.write('{"step": 3, "time": 1.5, "loss_d": 0.8, "loss_g": 1.7}\n{"step": 4, "ti')
    save_png(np.full((10, 10, 3), 200, np.uint8), run.sample_path(3))
    qtbot.waitUntil(lambda: w.chart.series["loss_d"].n == 3 and w.samples.current_step == 3,
                    timeout=10_000)
    with open(run.metrics_path, "a") as f:
        f.write('me": 2.0, "loss_d": 0.7, "loss_g": 1.6}\n')
    qtbot.waitUntil(lambda: w.chart.series["loss_d"].n == 4, timeout=10_000)
    assert list(w.chart.series["loss_d"].ys) == pytest.approx([1.0, 0.9, 0.8, 0.7])
    assert w.samples.current_array[0, 0, 0] == 200
    assert w.status_labels["step"].text() == "step 4 / 100"
    w.stop_watching()
    assert w.watcher is None


def test_browser_lists_opens_and_resumes(qtbot, tiny_window, finished_run):
    run_dir, engine = finished_run
    w = tiny_window(runs_root=str(run_dir.parent))
    with qtbot.waitSignal(w.browser.refreshed, timeout=10_000) as blocker:
        w.tabs.setCurrentWidget(w.browser)
    assert blocker.args == [1]
    item = w.browser.tree.topLevelItem(0)
    assert item.text(0) == "tiny-done" and item.text(1) == "Tiny test GAN"
    assert (item.text(2), item.text(3), item.text(4)) == ("images (20)", "16×16", "12 / 12")
    assert not item.icon(0).isNull() and item.toolTip(2).endswith("images")
    assert w.browser.select(str(run_dir))
    with qtbot.waitSignal(w.runOpened, timeout=10_000):
        w.browser.buttons["open"].click()
    rows, _ = RunFolder(run_dir).read_metrics(0)
    assert list(w.chart.series["loss_g"].xs) == [r["step"] for r in rows]
    assert [s for s, _ in w.samples.frames] == [0, 4, 8, 12]
    assert w.samples.current_step == 12

    # resume it for 6 more steps: history stays on the chart, new points follow
    w.model_panel.steps.setValue(18)
    w.browser.buttons["resume"].click()
    qtbot.waitUntil(lambda: w.events_seen.get("finished") == 1 and w.state == "idle",
                    timeout=30_000)
    xs = list(w.chart.series["loss_g"].xs)
    assert xs[0] == rows[0]["step"] and xs[-1] == 18 and xs == sorted(xs)
    assert RunFolder(run_dir).read_info()["total_steps"] == 18
    assert (run_dir / "checkpoints" / "ckpt_00000018.pt").is_file()
    qtbot.waitUntil(lambda: w.tasks.busy == 0, timeout=10_000)


def test_exports(qtbot, tiny_window, finished_run, tmp_path, tiny_pm):
    import imageio.v2 as imageio
    import torch
    from safetensors.torch import load_file
    from ganstudio.gui import export as ex

    run_dir, engine = finished_run
    w = tiny_window()
    with qtbot.waitSignal(w.runOpened, timeout=10_000):
        w.open_run(run_dir)
    # the grid on screen, through the window's background export
    with qtbot.waitSignal(w.exportDone, timeout=10_000) as blocker:
        w.export("grid", run_dir, tmp_path / "out" / "grid.png")
    saved = np.asarray(Image.open(blocker.args[0]).convert("RGB"))
    on_disk = np.asarray(Image.open(RunFolder(run_dir).sample_path(12)).convert("RGB"))
    assert np.array_equal(saved, on_disk)
    # time-lapse: one frame per saved grid
    gif = ex.export_timelapse(run_dir, tmp_path / "out" / "t.gif")
    assert len(imageio.mimread(gif)) == 4
    mp4 = ex.export_timelapse(run_dir, tmp_path / "out" / "t.mp4")
    reader = imageio.get_reader(mp4)
    assert reader.count_frames() == 4
    reader.close()
    # generator weights equal the checkpoint's generator
    st_path = ex.export_generator(run_dir, tiny_pm, tmp_path / "out" / "g.safetensors")
    st = load_file(st_path)
    mask = os.umask(0)
    os.umask(mask)
    assert st_path.stat().st_mode & 0o777 == 0o666 & ~mask     # not owner-only
    for k, v in engine.model.G.state_dict().items():
        assert torch.equal(st[k], v)
    pt = torch.load(ex.export_generator(run_dir, tiny_pm, tmp_path / "out" / "g.pt"),
                    weights_only=True)
    assert set(pt) == set(st)
    # N samples as separate PNGs at the training resolution
    files = ex.export_samples(run_dir, tiny_pm, 5, tmp_path / "out" / "samples", seed=3)
    assert len(files) == 5 and Image.open(files[0]).size == (16, 16)
    with pytest.raises(Exception, match=r"\.gif or \.mp4"):
        ex.export_timelapse(run_dir, tmp_path / "out" / "t.avi")


def test_resuming_a_run_of_a_missing_model_says_so(qtbot, tiny_window, tmp_path):
    run = RunFolder(tmp_path / "other")
    run.create({"model_id": "stylegan9", "config": {}, "total_steps": 10})
    w = tiny_window()
    assert not w.resume_run(run.path)
    assert "'stylegan9', which is not installed" in w.info_bar.label.text()
    assert w.state == "idle" and w.session is None


def test_run_option_shows_history_or_follows_a_busy_run(qtbot, tiny_window, finished_run):
    """``ganstudio gui --run RUN``: a finished run shows its charts and grids (Start resumes
    it); a run that another process holds is followed live instead of trained twice."""
    run_dir, _engine = finished_run
    assert not RunFolder(run_dir).is_busy()
    w = tiny_window(run=str(run_dir))
    qtbot.waitUntil(lambda: "loss_g" in w.chart.series and w.samples.current_step == 12,
                    timeout=10_000)
    assert w.chart.series["loss_g"].n == 6 and w.watcher is None
    assert w.status_labels["step"].text() == "step 12 / 12"
    assert w.trainer.first_run_dir == str(run_dir)  # Start resumes it

    lock = RunFolder(run_dir).lock()  # another writer
    try:
        assert RunFolder(run_dir).is_busy()
        w2 = tiny_window(run=str(run_dir), autostart=True)
        assert w2.watcher is not None and w2.session is None
        assert w2.info_bar.kind == "watching"
        qtbot.waitUntil(lambda: "loss_g" in w2.chart.series, timeout=10_000)
        w2.stop_watching()
    finally:
        lock.release()
    assert not RunFolder(run_dir).is_busy()


def test_long_time_lapses_are_thinned_evenly_keeping_first_and_last():
    from pathlib import Path
    from ganstudio.gui.export import pick_frames
    paths = [Path(f"step_{i:08d}.png") for i in range(1000)]
    picked = pick_frames(paths, 240)
    assert len(picked) == 240
    assert picked[0] == paths[0] and picked[-1] == paths[-1]
    steps = [int(p.stem[5:]) for p in picked]
    gaps = {b - a for a, b in zip(steps, steps[1:])}
    assert gaps <= {4, 5}                      # evenly spaced
    assert pick_frames(paths[:10], 240) == paths[:10]


def test_the_runs_folder_reads_from_the_home_folder(qtbot, tmp_path, monkeypatch):
    """A runs folder under the home folder shows as ~/...; the full path stays in the tooltip
    and is what the browser reads."""
    from ganstudio.gui.run_browser import RunBrowser, display_path
    from ganstudio.gui.tasks import Tasks
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    runs = home / "ganstudio-runs"
    tasks = Tasks()
    browser = RunBrowser(tasks)
    qtbot.addWidget(browser)
    browser.set_root(str(runs), refresh=False)
    assert browser.root_edit.text() == os.path.join("~", "ganstudio-runs")
    assert browser.root_edit.toolTip() == str(runs) == browser.root
    assert display_path(home) == "~"
    elsewhere = tmp_path / "elsewhere" / "runs"
    assert display_path(elsewhere) == str(elsewhere)
    assert display_path(str(tmp_path / "home-not")) == str(tmp_path / "home-not")


def test_screenshot_runs_go_to_ganstudio_runs_in_a_temporary_home(tmp_path, monkeypatch):
    """The README's Runs tab shows ~/ganstudio-runs, not a temporary folder's name."""
    import importlib.util
    from pathlib import Path

    from ganstudio.core.data import default_cache_dir
    from ganstudio.gui.run_browser import display_path
    path = Path(__file__).resolve().parents[2] / "resources/screenshots/take_screenshots.py"
    spec = importlib.util.spec_from_file_location("take_screenshots", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cache = default_cache_dir()
    monkeypatch.setenv("HOME", os.environ.get("HOME", str(tmp_path)))  # put back afterwards
    runs = module.use_temporary_home(tmp_path / "work")
    assert runs == tmp_path / "work" / "home" / "ganstudio-runs"
    assert (tmp_path / "work" / "home").is_dir()
    assert display_path(runs) == os.path.join("~", "ganstudio-runs")
    assert default_cache_dir() == cache  # the demo images' cache did not move with HOME
