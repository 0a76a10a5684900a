"""Take the README screenshots of the real studio window under an X server (e.g. Xvfb).

    Xvfb :99 -screen 0 1440x900x24 &
    DISPLAY=:99 OMP_NUM_THREADS=1 python resources/screenshots/take_screenshots.py

Trains a DCGAN on the bundled demo images with the studio's own demo settings and
step count (what "Use demo images" sets), so the status bar shows a real run: its
step count, speed and ETA. The training view is captured once the run is
``--at`` of the way through (by step, not by wall time, so a slow machine gives
the same picture), then a sample at full size, the run browser and the light
theme. Each capture is the window's rectangle, taken with ImageMagick's
``import``. The run is written to ``~/ganstudio-runs`` under a fresh, temporary
home folder, so the Runs tab shows the folder a user's own runs go to (the
studio's default) instead of a temporary path; the dataset cache stays where it
was.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def gui_argv(data: str, steps: int, runs_root: Path) -> list[str]:
    """``ganstudio gui`` arguments for the screenshot run: DCGAN with the demo settings."""
    from ganstudio.gui.main_window import DEMO_SETTINGS
    demo = [item for k, v in DEMO_SETTINGS.items() for item in ("--set", f"{k}={v}")]
    return ["gui", "--data", str(data), "--model", "dcgan", "--autostart",
            "--steps", str(steps), "--runs-root", str(runs_root), *demo]


def use_temporary_home(work: Path) -> Path:
    """Point HOME at ``work/home`` and return the runs folder the studio would default to
    there (``~/ganstudio-runs``). The dataset cache keeps its usual place, so the demo
    images are read from it as before and nothing new is decoded."""
    from ganstudio.core.data import default_cache_dir
    os.environ.setdefault("GANSTUDIO_CACHE_DIR", str(default_cache_dir()))
    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    os.environ["HOME"] = str(home)
    from ganstudio.gui.main_window import default_runs_root
    return default_runs_root()


def main(argv=None) -> int:
    from ganstudio.gui.main_window import DEMO_STEPS
    from ganstudio.gui.resources import demo_dataset_dir

    p = argparse.ArgumentParser()
    p.add_argument("--data", default=str(demo_dataset_dir()),
                   help="image folder (default: the bundled demo images)")
    p.add_argument("--steps", type=int, default=DEMO_STEPS,
                   help=f"total steps of the run (default: the demo's {DEMO_STEPS:,})")
    p.add_argument("--at", type=float, default=0.7,
                   help="capture the training view at this fraction of the steps")
    p.add_argument("--timeout", type=float, default=900,
                   help="give up (exit 1) after this many seconds")
    p.add_argument("--out", default=str(HERE))
    a = p.parse_args(argv)
    out = Path(a.out)
    work = Path(tempfile.mkdtemp(prefix="ganstudio-shots-"))

    from PySide6.QtCore import QSettings, QTimer
    from ganstudio.cli import build_parser
    from ganstudio.gui.app import build_window

    runs_root = use_temporary_home(work)
    args = build_parser().parse_args(gui_argv(a.data, a.steps, runs_root))
    settings = QSettings(str(work / "settings.ini"), QSettings.IniFormat)
    app, w = build_window(args, settings=settings)
    w.resize(1400, 860)
    w.move(20, 20)
    w.confirm_close = lambda: True
    failed: list[str] = []

    def shot(name: str) -> None:
        app.processEvents()
        g = w.frameGeometry()
        subprocess.run(["import", "-window", "root", "-crop",
                        f"{g.width()}x{g.height()}+{g.x()}+{g.y()}", "+repage",
                        str(out / name)], check=True)
        print("wrote", out / name, flush=True)

    def later(ms: int, fn) -> None:
        QTimer.singleShot(ms, fn)

    def current_step() -> int:
        return int(w.trainer.live_rows[-1]["step"]) if w.trainer.live_rows else 0

    def setup():
        w.model_panel.sample_every.setValue(3.0)
        w.ensure_chart()
        w.chart.smoothing.setValue(10)   # the default, kept explicit

    def wait_for_progress():
        if w.last_error:
            failed.append(w.last_error)
            w.close()
            return
        if w.state == "running" and current_step() >= a.at * a.steps:
            training()
        else:
            later(250, wait_for_progress)

    def training():
        shot("studio-training.png")
        w.samples.enlarge(5)
        later(1500, sample)

    def sample():
        shot("studio-sample.png")
        for d in w.samples.dialogs:
            d.close()
        w.pause_training()
        later(2500, runs)

    def runs():
        w.tabs.setCurrentWidget(w.browser)
        later(2000, runs_shot)

    def runs_shot():
        shot("studio-runs.png")
        w.tabs.setCurrentIndex(0)
        w.set_theme("light")
        later(2000, light)

    def light():
        shot("studio-light.png")
        w.set_theme("dark")
        w.close()

    def give_up():
        failed.append(f"no screenshots after {a.timeout:g} s (state {w.state}, "
                      f"step {current_step()})")
        w.close()

    later(100, setup)
    later(500, wait_for_progress)
    later(int(a.timeout * 1000), give_up)
    code = int(app.exec())
    if failed:
        print("take_screenshots:", failed[0], file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
