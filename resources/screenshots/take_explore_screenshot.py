"""Take the README screenshot of the Explore tab on a real run (under Xvfb or a desktop).

    xvfb-run -s "-screen 0 1440x900x24" python resources/screenshots/take_explore_screenshot.py \\
        --run RUN --pin 3,17,42 --out resources/screenshots/studio-explore.png

Opens the studio on RUN (``ganstudio gui --run RUN``), switches to the Explore
tab, pins the given seeds (in RUN/explore.json, as a click would), waits until
the seed page and the interpolation strip are drawn and saves the window.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--run", required=True, help="a trained run whose model declares a latent space")
    p.add_argument("--pin", default="3,17,42", help="seeds to pin (default 3,17,42)")
    p.add_argument("--view", default="Seeds", help="Explore view to show (Seeds, Interpolate, ...)")
    p.add_argument("--size", default="1400x860", help="window size WxH")
    p.add_argument("--out", required=True, help="PNG to write")
    args = p.parse_args(argv)

    from PySide6.QtCore import QSettings, QTimer

    from ganstudio.core.explore_state import set_seed_pinned
    from ganstudio.gui.app import build_window

    for seed in [int(s) for s in args.pin.split(",") if s.strip()]:
        set_seed_pinned(args.run, seed, True)
    work = Path(tempfile.mkdtemp(prefix="ganstudio-shot-"))
    settings = QSettings(str(work / "studio.ini"), QSettings.IniFormat)
    cli = argparse.Namespace(data=None, model=None, run=args.run, set=[], autostart=False,
                             steps=None, device="cpu", precision="auto", runs_root=None,
                             theme="dark")
    app, window = build_window(cli, settings)
    w, h = (int(v) for v in args.size.split("x"))
    window.resize(w, h)
    state = {"ticks": 0}

    def find_panel():
        titles = [window.tabs.tabText(i) for i in range(window.tabs.count())]
        if "Explore" not in titles:
            return None
        window.tabs.setCurrentIndex(titles.index("Explore"))
        from ganstudio_explore.panel import ExplorePanel
        tab = window.tabs.widget(titles.index("Explore"))
        return tab if isinstance(tab, ExplorePanel) else tab.findChild(ExplorePanel)

    def poll():
        state["ticks"] += 1
        panel = find_panel()
        ready = (panel is not None and panel.explorer is not None
                 and panel.seeds.rendered is not None and not panel.busy())
        if panel is not None and panel.explorer is not None and state.get("view") is None:
            names = [panel.tabs.tabText(i) for i in range(panel.tabs.count())]
            panel.tabs.setCurrentIndex(names.index(args.view))
            state["view"] = args.view
            ready = False
        if ready:
            QTimer.singleShot(500, shoot)
        elif state["ticks"] > 600:
            print("the Explore tab did not get ready within a minute", file=sys.stderr)
            app.exit(1)
        else:
            QTimer.singleShot(100, poll)

    def shoot():
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        window.grab().save(args.out)
        print(f"wrote {args.out}")
        window.confirm_close = lambda: True
        window.close()
        app.exit(0)

    QTimer.singleShot(500, poll)
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
