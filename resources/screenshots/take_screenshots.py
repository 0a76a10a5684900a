"""Take the README screenshots of the real studio window under an X server (e.g. Xvfb).

    Xvfb :99 -screen 0 1440x900x24 &
    DISPLAY=:99 python resources/screenshots/take_screenshots.py --data resources/demo

Trains a small DCGAN on the given folder for ``--seconds``, then captures the
whole screen with ImageMagick's ``import`` for each view: training (dark),
the run browser, a sample at full size, and the light theme.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--seconds", type=float, default=90)
    p.add_argument("--out", default=str(HERE))
    a = p.parse_args(argv)
    out = Path(a.out)
    work = Path(tempfile.mkdtemp(prefix="ganstudio-shots-"))

    from PySide6.QtCore import QSettings, QTimer
    from ganstudio.cli import build_parser
    from ganstudio.gui.app import build_window

    args = build_parser().parse_args(
        ["gui", "--data", a.data, "--model", "dcgan", "--autostart", "--steps", "1000000",
         "--runs-root", str(work / "runs"), "--set", "resolution=32", "--set", "g_features=16",
         "--set", "d_features=16", "--set", "batch_size=32"])
    settings = QSettings(str(work / "settings.ini"), QSettings.IniFormat)
    app, w = build_window(args, settings=settings)
    w.resize(1400, 860)
    w.move(20, 20)
    w.confirm_close = lambda: True

    def shot(name: str) -> None:
        app.processEvents()
        subprocess.run(["import", "-window", "root", str(out / name)], check=True)
        print("wrote", out / name, flush=True)

    def step1():
        w.model_panel.sample_every.setValue(3.0)
        w.ensure_chart()
        w.chart.smoothing.setValue(10)

    def step2():
        shot("studio-training.png")
        w.samples.enlarge(5)

    def step3():
        shot("studio-sample.png")
        for d in w.samples.dialogs:
            d.close()
        w.pause_training()

    def step4():
        w.tabs.setCurrentWidget(w.browser)

    def step5():
        shot("studio-runs.png")
        w.tabs.setCurrentIndex(0)
        w.set_theme("light")

    def step6():
        shot("studio-light.png")
        w.set_theme("dark")
        w.close()

    t = a.seconds * 1000
    QTimer.singleShot(100, step1)
    QTimer.singleShot(int(t), step2)
    QTimer.singleShot(int(t) + 1500, step3)
    QTimer.singleShot(int(t) + 4000, step4)
    QTimer.singleShot(int(t) + 6000, step5)
    QTimer.singleShot(int(t) + 8000, step6)
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main())
