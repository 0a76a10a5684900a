"""What the window starts from: the command line's options and the settings the user
left last time (window geometry, docks, theme, runs folder, data folder, model)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSize, Qt

from .demo import is_demo_folder
from .theme import THEMES, current_theme


@dataclass
class StudioOptions:
    """What the command line asks of the window (``ganstudio gui ...``)."""

    data: str | None = None
    model: str | None = None
    run: str | None = None
    set: list[str] = field(default_factory=list)
    autostart: bool = False
    steps: int | None = None
    device: str = "auto"
    precision: str = "auto"
    runs_root: str | None = None
    plugins_dir: str | None = None
    theme: str | None = None

    @classmethod
    def from_args(cls, args: Any) -> "StudioOptions":
        return cls(data=getattr(args, "data", None), model=getattr(args, "model", None),
                   run=getattr(args, "run", None), set=list(getattr(args, "set", None) or []),
                   autostart=bool(getattr(args, "autostart", False)),
                   steps=getattr(args, "steps", None),
                   device=getattr(args, "device", None) or "auto",
                   precision=getattr(args, "precision", None) or "auto",
                   runs_root=getattr(args, "runs_root", None),
                   plugins_dir=getattr(args, "plugins_dir", None),
                   theme=getattr(args, "theme", None))


def default_runs_root() -> Path:
    return Path.home() / "ganstudio-runs"


def default_window_size(available: QSize) -> QSize:
    """1280 x 800 where the screen has room; on a smaller screen (a 1366 x 768 laptop less
    its panel) the whole window, status bar included, stays on it."""
    return QSize(min(1280, available.width()), min(800, available.height()))


def restore_window(win) -> None:
    """Geometry, docks, theme, runs folder and data folder as the user left them."""
    s = win.settings
    geo = s.value("window/geometry")
    if isinstance(geo, QByteArray) and not geo.isEmpty():
        win.restoreGeometry(geo)
    else:
        win.resize(default_window_size(win.screen().availableGeometry().size()))
    st = s.value("window/state")
    if isinstance(st, QByteArray) and not st.isEmpty():
        win.restoreState(st)
    else:
        # The settings form needs the height more than the thumbnail strip does.
        win.resizeDocks([win.dataset_dock, win.model_dock], [250, 600], Qt.Vertical)
    sp = s.value("window/splitter")
    if isinstance(sp, QByteArray) and not sp.isEmpty():
        win.splitter.restoreState(sp)
    else:
        win.splitter.setSizes([600, 440])
    theme = win.options.theme or str(s.value("theme", "dark"))
    win.theme_actions.get(theme if theme in THEMES else "dark").setChecked(True)
    # With --run RUN the browser shows RUN's siblings, so the run is there to reopen.
    run_parent = (str(Path(win.options.run).expanduser().absolute().parent)
                  if win.options.run else None)
    root = (win.options.runs_root or run_parent or s.value("runs_root")
            or str(default_runs_root()))
    win.browser.set_root(str(root), refresh=False)
    win.dataset_panel.last_dir = str(s.value("last_data_dir", "") or "")
    data = win.options.data or s.value("last_data_folder")
    if data and Path(str(data)).is_dir():
        win.dataset_panel.set_folder(str(data), emit=False)
        if not win.options.data and is_demo_folder(str(data)):
            # Reopened on the demo images: their light settings again, not the model's
            # 64 px defaults (minutes per sample grid on a laptop CPU).
            win.demo.pending = True
    if not win.options.data and not data:
        win.info_bar.show_message(
            "Welcome to GAN Studio. Choose or drop a folder of your images, or try the "
            "bundled demo images to see a GAN learn right away.", "info",
            [("Use demo images", win.use_demo_dataset)], kind="welcome")


def save_window(win) -> None:
    """Remember what :func:`restore_window` reads."""
    s = win.settings
    s.setValue("window/geometry", win.saveGeometry())
    s.setValue("window/state", win.saveState())
    s.setValue("window/splitter", win.splitter.saveState())
    s.setValue("theme", current_theme())
    s.setValue("runs_root", win.browser.root)
    if win.dataset_panel.folder:
        s.setValue("last_data_folder", win.dataset_panel.folder)
    s.setValue("last_data_dir", win.dataset_panel.last_dir)
    spec = win.model_panel.current_spec()
    if spec is not None:
        s.setValue("last_model", spec.id)
    s.sync()
