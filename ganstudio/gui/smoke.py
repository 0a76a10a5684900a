"""Open the studio, train a run from its window, measure GUI stalls, quit when done.

    QT_QPA_PLATFORM=offscreen python -m ganstudio.gui.smoke --data resources/demo \\
        --model dcgan --steps 2000 --device cuda

Prints one JSON line: steps trained, images/s (median of the logged values),
the longest gap of a 10 ms heartbeat timer in the GUI thread while training
ran, seconds from window shown to first metrics, and the run folder. Exit code
0 when the run completed, 1 otherwise. Runs in a temporary settings file and,
unless --run is given, a temporary run folder.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="studio smoke run with a GUI stall heartbeat")
    p.add_argument("--data", required=True)
    p.add_argument("--model", default=None,
                   help="model id (default: the model the studio selects on its own)")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--device", default="auto")
    p.add_argument("--run", default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--timeout", type=float, default=540.0, help="give up after this many seconds")
    a = p.parse_args(argv)

    from PySide6.QtCore import QElapsedTimer, QSettings, QTimer
    from .app import build_window

    work = Path(tempfile.mkdtemp(prefix="ganstudio-smoke-"))
    run = a.run or str(work / "run")
    args = argparse.Namespace(data=a.data, model=a.model, run=run, set=a.set, autostart=True,
                              steps=a.steps, device=a.device, runs_root=str(work / "runs"),
                              plugins_dir=None, theme=None)
    settings = QSettings(str(work / "settings.ini"), QSettings.IniFormat)
    app, w = build_window(args, settings=settings)
    w.confirm_close = lambda: True
    shown = time.perf_counter()
    clock = QElapsedTimer()
    clock.start()
    state = {"last": 0, "longest": 0, "first_metrics": None, "ips": []}

    def beat():
        now = clock.elapsed()
        if w.state in ("running", "paused", "stopping"):
            state["longest"] = max(state["longest"], now - state["last"])
        state["last"] = now
        seen = w.events_seen.get("metrics", 0)
        if seen and state["first_metrics"] is None:
            state["first_metrics"] = time.perf_counter() - shown
        if w.events_seen.get("finished") or w.events_seen.get("failed"):
            if w.state == "idle" and w.session is None:
                w.close()
                app.quit()

    heart = QTimer()
    heart.timeout.connect(beat)
    heart.start(10)
    QTimer.singleShot(int(a.timeout * 1000), lambda: (w.stop_training(), None))
    app.exec()
    heart.stop()

    from ganstudio.core.runs import RunFolder
    rows, _ = RunFolder(run).read_metrics(0)
    ips = [r["img_per_s"] for r in rows if isinstance(r.get("img_per_s"), (int, float))]
    report = {
        "completed": w.events_seen.get("finished", 0) == 1 and not w.events_seen.get("failed"),
        "steps": rows[-1]["step"] if rows else 0,
        "img_per_s_median": round(statistics.median(ips), 1) if ips else None,
        "longest_gui_stall_ms": state["longest"],
        "seconds_to_first_metrics": round(state["first_metrics"] or -1, 2),
        "device": w.status_labels["device"].text(),
        "error": w.last_error,
        "run": run,
    }
    print(json.dumps(report), flush=True)
    return 0 if report["completed"] and report["steps"] >= a.steps else 1


if __name__ == "__main__":
    sys.exit(main())
