"""The studio's main window: dataset and model panels, live chart and grid, run browser.

Import cost matters here: this module pulls in Qt and pyqtgraph but not torch
or any plugin. Those load in a background thread once the window is on screen
(:meth:`MainWindow.start_loading`).
"""
from __future__ import annotations

import datetime as _dt
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (QApplication, QDockWidget, QLabel, QMainWindow, QMessageBox,
                               QSplitter, QTabWidget, QToolBar, QVBoxLayout, QWidget)

from ganstudio.core.config import parse_set_args
from ganstudio.core.errors import ConfigError, UserError
from ganstudio.core.runs import RunFolder
from ganstudio.core.units import format_duration

from .dataset_panel import DatasetPanel
from .grid import SamplePanel, qimage_to_array
from .model_panel import ModelPanel
from .resources import demo_dataset_dir
from .run_browser import RunBrowser
from .panel_api import StudioAPI
from .panel_host import PanelHost
from .tasks import Tasks
from .theme import THEMES, apply_theme, current_theme, icon
from .widgets import ExportDialog, InfoBar

SHORTCUTS = {
    "start": "F5",
    "pause": "F6",
    "resume": "F7",
    "stop": "Shift+F5",
    "checkpoint": "Ctrl+S",
}

PROGRESS_KEYS = ("resolution", "alpha", "phase", "phase_progress")

# The demo images are for a first look: settings light enough that a 2-core CPU shows
# the samples changing within a minute (only keys the chosen model knows are applied;
# the models' own defaults stay as they are).
DEMO_SETTINGS = {"resolution": 32, "batch_size": 16, "g_features": 32, "d_features": 32}
DEMO_STEPS = 3000


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


def gui_wording(text: str) -> str:
    """Engine advice speaks to the command line ("--set lr_d=0.0001"); in the window the
    same advice names the setting to change in the Model panel."""
    import re
    return re.sub(r"--set\s+(\w+)=", r"setting \1=", text)


def run_is_busy(run_dir: str | Path) -> bool:
    """Whether another process (or window) holds the run's writer lock (``RUN/.lock``).

    Read-only probe: a shared, non-blocking ``flock`` on the existing lock file, so a run
    on a read-only share is simply "not busy". Windows: always False (no probe there).
    """
    lock = Path(run_dir) / ".lock"
    if sys.platform == "win32" or not lock.is_file():
        return False
    import errno
    import fcntl
    import os
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as e:
        return e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "n/a"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def default_window_size(available: QSize) -> QSize:
    """1280 x 800 where the screen has room; on a smaller screen (a 1366 x 768 laptop less
    its panel) the whole window, status bar included, stays on it."""
    return QSize(min(1280, available.width()), min(800, available.height()))


def device_text(device: str, precision: str = "fp32") -> str:
    """The status bar's device, with ``· bf16`` when the run trains under bf16 autocast,
    so the precision is visible without a hover."""
    return device if precision in ("", "fp32") else f"{device} · {precision}"


def shortcuts_html() -> str:
    """The Help > Keyboard shortcuts text: a two-column table (spaces do not line up in a
    proportional font)."""
    rows = "".join(f"<tr><td>{k.capitalize()}</td><td style='padding-left:16px'><b>{v}</b>"
                   "</td></tr>" for k, v in SHORTCUTS.items())
    return f"<table>{rows}</table>"


def progress_text(values: dict) -> str:
    """Status-bar text for progressive models (resolution, alpha, phase, phase progress)."""
    parts = []
    if values.get("phase") is not None:
        parts.append(f"phase {values['phase']:g}")
    if values.get("resolution") is not None:
        r = int(values["resolution"])
        parts.append(f"{r}×{r} px")
    if values.get("alpha") is not None:
        parts.append(f"α {values['alpha']:.2f}")
    if values.get("phase_progress") is not None:
        parts.append(f"{100 * values['phase_progress']:.0f}% of phase")
    return " · ".join(parts)


class MainWindow(QMainWindow):
    """GAN Studio's window. Training state: idle, preparing, running, paused, stopping."""

    stateChanged = Signal(str)
    pluginsLoaded = Signal()
    runOpened = Signal(str)
    exportDone = Signal(str)

    def __init__(self, options: StudioOptions | None = None, settings: QSettings | None = None,
                 *, lazy_chart: bool = False):
        super().__init__()
        self.options = options or StudioOptions()
        self.settings = settings if settings is not None else QSettings("GAN Studio", "studio")
        self.setWindowTitle("GAN Studio")
        self.setWindowIcon(icon("app"))
        self.setObjectName("mainWindow")
        self.setAcceptDrops(True)
        self.tasks = Tasks(self)
        self._run_dir: Path | None = None
        self.studio = StudioAPI(self, self.tasks, current_run=lambda: self.run_dir,
                                runs_root=lambda: Path(self.browser.root or default_runs_root()),
                                plugin_manager=lambda: self.pm,
                                device=lambda: self.model_panel.device.currentText(),
                                show_status=self.show_status, open_run=self.open_run)
        self.pm: Any = None
        self.session: Any = None
        self.watcher: Any = None
        self.state = "idle"
        self.total_steps = 0
        self.last_values: dict = {}
        self.last_error = ""
        self.last_finished: Any = None
        self.events_seen: dict[str, int] = {}
        self._close_pending = False
        self._closing_done = False
        self._scan_token = 0
        self._ips = 0.0
        self._steps_per_s = 0.0
        self._last_metric: tuple[int, float] | None = None
        self._live_rows: list[dict] = []
        self._first_run_dir = self.options.run
        self._demo_pending = False
        self._demo_undo: tuple | None = None  # (model id, settings, steps) before the demo
        self.probe = False  # start-up probe: leave the user's settings alone

        self.chart: Any = None
        self._build_views()
        if not lazy_chart:
            self.ensure_chart()
        self._build_actions()
        self._build_status()
        self._restore_settings()
        self._set_state("idle")

    # ============================================================================ studio API
    @property
    def run_dir(self) -> Path | None:
        """The run being trained or viewed; panels hear of changes (``run_changed``)."""
        return self._run_dir

    @run_dir.setter
    def run_dir(self, value: str | Path | None) -> None:
        value = Path(value) if value is not None else None
        changed = value != self._run_dir
        self._run_dir = value
        if changed:
            self.studio.run_changed.emit(value)

    def show_status(self, text: str, level: str = "info") -> None:
        """A message for the user: info in the status bar, warnings and errors in the
        message strip above the tabs."""
        if level == "info":
            self.statusBar().showMessage(text, 10_000)
        elif level == "error":
            self.show_error(text)
        else:
            self.info_bar.show_message(text, "warning", kind="panel")

    def _report_panel_problem(self, message: str) -> None:
        self.statusBar().showMessage(message[:1].upper() + message[1:], 15_000)

    # ============================================================================ building
    def _build_views(self) -> None:
        self.info_bar = InfoBar()
        self.samples = SamplePanel()
        self.splitter = QSplitter(Qt.Horizontal)
        self.splitter.setObjectName("trainSplitter")
        self._chart_placeholder = QLabel("Loading the chart…")
        self._chart_placeholder.setAlignment(Qt.AlignCenter)
        self.splitter.addWidget(self._chart_placeholder)
        self.splitter.addWidget(self.samples)
        self.splitter.setChildrenCollapsible(False)
        self.samples.setMinimumWidth(220)  # a saved wide layout must not squeeze the grid away
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.browser = RunBrowser(self.tasks)
        self.browser.openRequested.connect(lambda p: self.open_run(p))
        self.browser.watchRequested.connect(lambda p: self.watch_run(p))
        self.browser.resumeRequested.connect(lambda p: self.resume_run(p))
        self.browser.exportRequested.connect(lambda p: self.show_export_dialog(p))
        self.tabs = QTabWidget()
        self.tabs.setObjectName("mainTabs")
        self.panel_host = PanelHost(self.tabs, self._report_panel_problem)
        self.panel_host.add_tab(self.splitter, "Training", 0)
        self.panel_host.add_tab(self.browser, "Runs", 10)
        self.tabs.currentChanged.connect(self._on_tab)
        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(6, 6, 6, 0)
        lay.addWidget(self.info_bar)
        lay.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        self.dataset_panel = DatasetPanel()
        self.dataset_panel.folderChosen.connect(self._on_folder)
        self.dataset_panel.demoRequested.connect(self.use_demo_dataset)
        self.model_panel = ModelPanel()
        self.model_panel.modelChanged.connect(self._on_model_changed)
        self.dataset_dock = QDockWidget("Dataset", self)
        self.dataset_dock.setObjectName("datasetDock")
        self.dataset_dock.setWidget(self.dataset_panel)
        self.model_dock = QDockWidget("Model", self)
        self.model_dock.setObjectName("modelDock")
        self.model_dock.setWidget(self.model_panel)
        self.addDockWidget(Qt.LeftDockWidgetArea, self.dataset_dock)
        self.addDockWidget(Qt.LeftDockWidgetArea, self.model_dock)
        self.splitDockWidget(self.dataset_dock, self.model_dock, Qt.Vertical)

    def ensure_chart(self) -> None:
        """Create the pyqtgraph chart (imported here: ~0.5 s we keep out of start-up)."""
        if self.chart is not None:
            return
        from .chart import MetricsChart
        self.chart = MetricsChart()
        self.chart.apply_theme(current_theme())
        sizes = self.splitter.sizes()
        self.splitter.replaceWidget(0, self.chart)
        self._chart_placeholder.deleteLater()
        self.splitter.setSizes(sizes)

    def _action(self, key: str, text: str, slot, tip: str, icon_name: str | None = None) -> QAction:
        a = QAction(icon(icon_name or key), text, self)
        a.setObjectName(f"action_{key}")
        if key in SHORTCUTS:
            a.setShortcut(QKeySequence(SHORTCUTS[key]))
            tip = f"{tip} ({SHORTCUTS[key]})"
        a.setToolTip(tip)
        a.setStatusTip(tip)
        a.triggered.connect(lambda _=False: slot())
        return a

    def _build_actions(self) -> None:
        self.actions_by_key = {
            "start": self._action("start", "Start", self.start_training, "Start training"),
            "pause": self._action("pause", "Pause", self.pause_training, "Pause training"),
            "resume": self._action("resume", "Resume", self.resume_training, "Resume training"),
            "stop": self._action("stop", "Stop", self.stop_training,
                                 "Stop training and save a checkpoint"),
            "checkpoint": self._action("checkpoint", "Checkpoint now", self.checkpoint_now,
                                       "Write a checkpoint now"),
            "export": self._action("export", "Export…", lambda: self.show_export_dialog(),
                                   "Export grids, samples, a time-lapse or the generator"),
        }
        tb = QToolBar("Controls")
        tb.setObjectName("controlsToolbar")
        tb.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        tb.setMovable(False)
        for key in ("start", "pause", "resume", "stop", "checkpoint"):
            tb.addAction(self.actions_by_key[key])
        tb.addSeparator()
        tb.addAction(self.actions_by_key["export"])
        self.addToolBar(Qt.TopToolBarArea, tb)
        self.toolbar = tb
        self.buttons = {k: tb.widgetForAction(a) for k, a in self.actions_by_key.items()}
        for key, button in self.buttons.items():
            button.setObjectName(f"button_{key}")

        menu = self.menuBar()
        f = menu.addMenu("&File")
        f.addAction(self._action("open_data", "Open image folder…", self.dataset_panel._choose,
                                 "Choose the folder of training images", "folder"))
        f.addAction(self._action("demo", "Use demo images", self.use_demo_dataset,
                                 "Train on the bundled demo dataset", "folder"))
        f.addAction(self._action("open_run", "Open run folder…", self._ask_open_run,
                                 "Show a past run's charts and grids", "folder"))
        f.addAction(self._action("watch_run", "Watch run folder…", self._ask_watch_run,
                                 "Follow a run written by another process", "folder"))
        f.addAction(self.actions_by_key["export"])
        f.addSeparator()
        quit_action = QAction("Quit", self)
        quit_action.setShortcut(QKeySequence.Quit)
        quit_action.triggered.connect(self.close)
        f.addAction(quit_action)
        t = menu.addMenu("&Training")
        for key in ("start", "pause", "resume", "stop", "checkpoint"):
            t.addAction(self.actions_by_key[key])
        v = menu.addMenu("&View")
        v.addAction(self.dataset_dock.toggleViewAction())
        v.addAction(self.model_dock.toggleViewAction())
        v.addSeparator()
        self.theme_actions = {}
        group = QActionGroup(self)
        for name in THEMES:
            a = QAction(f"{name.capitalize()} theme", self, checkable=True)
            a.triggered.connect(lambda _=False, n=name: self.set_theme(n))
            group.addAction(a)
            v.addAction(a)
            self.theme_actions[name] = a
        h = menu.addMenu("&Help")
        about = QAction("Keyboard shortcuts", self)
        about.triggered.connect(self._show_shortcuts)
        h.addAction(about)

    def _build_status(self) -> None:
        sb = self.statusBar()
        self.status_labels = {}
        for key, tip in (("state", "Training state"), ("step", "Step / total steps"),
                         ("speed", "Images per second"), ("elapsed", "Training time"),
                         ("eta", "Estimated time left"), ("progress", "Progressive growing"),
                         ("device", "Training device"), ("memory", "Memory in use")):
            lab = QLabel("")
            lab.setObjectName(f"status_{key}")
            lab.setToolTip(tip)
            lab.setContentsMargins(6, 0, 6, 0)
            sb.addPermanentWidget(lab)
            self.status_labels[key] = lab
        self.status_labels["progress"].setVisible(False)

    # ============================================================================ settings
    def _restore_settings(self) -> None:
        s = self.settings
        geo = s.value("window/geometry")
        if isinstance(geo, QByteArray) and not geo.isEmpty():
            self.restoreGeometry(geo)
        else:
            self.resize(default_window_size(self.screen().availableGeometry().size()))
        st = s.value("window/state")
        if isinstance(st, QByteArray) and not st.isEmpty():
            self.restoreState(st)
        else:
            # The settings form needs the height more than the thumbnail strip does.
            self.resizeDocks([self.dataset_dock, self.model_dock], [250, 600], Qt.Vertical)
        sp = s.value("window/splitter")
        if isinstance(sp, QByteArray) and not sp.isEmpty():
            self.splitter.restoreState(sp)
        else:
            self.splitter.setSizes([600, 440])
        theme = self.options.theme or str(s.value("theme", "dark"))
        self.theme_actions.get(theme if theme in THEMES else "dark").setChecked(True)
        # With --run RUN the browser shows RUN's siblings, so the run is there to reopen.
        run_parent = (str(Path(self.options.run).expanduser().absolute().parent)
                      if self.options.run else None)
        root = (self.options.runs_root or run_parent or s.value("runs_root")
                or str(default_runs_root()))
        self.browser.set_root(str(root), refresh=False)
        self.dataset_panel.last_dir = str(s.value("last_data_dir", "") or "")
        data = self.options.data or s.value("last_data_folder")
        if data and Path(str(data)).is_dir():
            self.dataset_panel.set_folder(str(data), emit=False)
            if not self.options.data and Path(str(data)).resolve() == \
                    demo_dataset_dir().resolve():
                # Reopened on the demo images: their light settings again, not the model's
                # 64 px defaults (minutes per sample grid on a laptop CPU).
                self._demo_pending = True
        if not self.options.data and not data:
            self.info_bar.show_message(
                "Welcome to GAN Studio. Choose or drop a folder of your images, or try the "
                "bundled demo images to see a GAN learn right away.", "info",
                [("Use demo images", self.use_demo_dataset)], kind="welcome")

    def save_settings(self) -> None:
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        s.setValue("window/splitter", self.splitter.saveState())
        s.setValue("theme", current_theme())
        s.setValue("runs_root", self.browser.root)
        if self.dataset_panel.folder:
            s.setValue("last_data_folder", self.dataset_panel.folder)
        s.setValue("last_data_dir", self.dataset_panel.last_dir)
        spec = self.model_panel.current_spec()
        if spec is not None:
            s.setValue("last_model", spec.id)
        s.sync()

    def set_theme(self, name: str) -> None:
        app = QApplication.instance()
        name = apply_theme(app, name)
        if self.chart is not None:
            self.chart.apply_theme(name)
        self.info_bar.restyle()
        self.theme_actions[name].setChecked(True)
        self.settings.setValue("theme", name)

    # ============================================================================ loading
    def start_loading(self) -> None:
        """Load torch and the plugins in a background thread (after the window is shown)."""
        from ganstudio.plugins import get_plugin_manager
        self.ensure_chart()
        plugins_dir = self.options.plugins_dir
        self.status_labels["state"].setText("loading models…")
        self.tasks.start(lambda: get_plugin_manager(plugins_dir), self.set_plugin_manager,
                         lambda msg, _tb: self.show_error(f"Could not load the plugins: {msg}"))

    def set_plugin_manager(self, pm: Any) -> None:
        """Models are known: fill the model panel and apply the command line."""
        self.pm = pm
        failed = [(name, info.error) for name, info in pm.plugins.items()
                  if info.status == "error"]
        self.model_panel.set_models(pm.models(kind="gan"), failed)
        self.panel_host.add_plugin_panels(pm, self.studio)
        opts = self.options
        wanted = opts.model or self.settings.value("last_model")
        if wanted:
            spec = None
            try:
                spec = pm.get_model(str(wanted))
            except UserError as e:
                if opts.model:
                    self.show_error(str(e))
            if spec is not None and spec.kind == "gan":
                self.model_panel.select_model(spec.id)
        if opts.steps:
            self.model_panel.steps.setValue(int(opts.steps))
        if opts.device:
            self.model_panel.set_device(opts.device)
        if opts.precision:
            self.model_panel.set_precision(opts.precision)
        if self._demo_pending:
            self.apply_demo_settings()
        follow_run = None
        if opts.run and RunFolder(opts.run).exists():
            try:
                self._prefill_from_run(opts.run)
            except UserError as e:
                self.show_error(str(e))
                opts.autostart = False
            if run_is_busy(opts.run):
                # Another process trains it: follow it rather than fight over the folder.
                follow_run, opts.autostart, self._first_run_dir = opts.run, False, None
            elif not opts.autostart:
                self.open_run(opts.run)  # its charts and grids; Start resumes it
        if opts.set:
            try:
                values = parse_set_args(opts.set)
                unknown = self.model_panel.form.set_values(values) if self.model_panel.form else []
                if unknown:
                    raise ConfigError(f"unknown setting(s) {', '.join(unknown)} for model "
                                      f"'{self.model_panel.current_spec().id}'")
            except UserError as e:
                self.show_error(str(e))
                opts.autostart = False
        self.status_labels["state"].setText("ready")
        self._update_actions()
        if self.dataset_panel.folder:
            self.scan_dataset()
        if follow_run is not None and self.watch_run(follow_run):
            self.info_bar.show_message(
                f"Another process is training {Path(follow_run).name}; following its "
                "metrics and grids live.", "info", kind="watching")
        self.pluginsLoaded.emit()
        if opts.autostart:
            opts.autostart = False
            self.start_training()

    def _prefill_from_run(self, run_dir: str | Path) -> dict:
        """Put a run's model, settings and data folder into the panels."""
        info = RunFolder(run_dir).read_info()
        if not self.model_panel.select_model(info["model_id"]):
            raise UserError(f"run {Path(run_dir).name} was trained with model "
                            f"'{info['model_id']}', which is not installed here")
        if self.model_panel.form is not None:
            self.model_panel.form.set_values({k: v for k, v in info["config"].items()
                                              if self.model_panel.current_spec().field(k)})
        if isinstance(info.get("total_steps"), int) and not self.options.steps:
            self.model_panel.steps.setValue(info["total_steps"])
        folder = (info.get("dataset") or {}).get("folder")
        if folder and Path(folder).is_dir() and not self.options.data:
            self.dataset_panel.set_folder(folder, emit=False)
        return info

    # ============================================================================ dataset
    def use_demo_dataset(self) -> None:
        folder = demo_dataset_dir()
        if not folder.is_dir():
            self.show_error(f"The demo images are missing ({folder}); "
                            "run resources/make_demo_dataset.py to create them.")
            return
        self.apply_demo_settings()  # before the folder: the scan uses the resolution
        self.dataset_panel.set_folder(str(folder))

    def apply_demo_settings(self) -> bool:
        """Light settings for the demo images; applied once the models have loaded."""
        form, spec = self.model_panel.form, self.model_panel.current_spec()
        if form is None or spec is None:
            self._demo_pending = True
            return False
        self._demo_pending = False
        values = {}
        for key, value in DEMO_SETTINGS.items():
            f = spec.field(key)
            if f is not None and (not f.choices or value in f.choices):
                values[key] = value
        if self._demo_undo is None:  # what to put back when the user's own folder comes
            current = form.values() if form is not None else {}
            self._demo_undo = (spec.id, {k: current[k] for k in values if k in current},
                               self.model_panel.steps.value())
        form.set_values(values)
        if not self.options.steps:  # a --steps on the command line is the user's choice
            self.model_panel.steps.setValue(DEMO_STEPS)
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        self.statusBar().showMessage(
            f"Demo settings for a quick first run: {shown}, "
            f"{self.model_panel.steps.value():,} steps (change them in the Model panel)", 15000)
        return True

    def _undo_demo_settings(self) -> None:
        """The user's own folder after the demo: put back the settings the demo lightened
        (those still at the demo's values), so real images train at the model's settings."""
        undo, self._demo_undo = self._demo_undo, None
        form, spec = self.model_panel.form, self.model_panel.current_spec()
        if undo is None or form is None or spec is None or spec.id != undo[0]:
            return
        model_id, before, steps = undo
        try:
            now = form.values()
        except ConfigError:
            now = {}
        back = {k: v for k, v in before.items() if now.get(k) == DEMO_SETTINGS.get(k)}
        form.set_values(back)
        if self.model_panel.steps.value() == DEMO_STEPS:
            self.model_panel.steps.setValue(steps)
        if back:
            self.statusBar().showMessage(
                "Your images: the demo's light settings are undone ("
                + ", ".join(f"{k}={v}" for k, v in back.items()) + ")", 10000)

    def _on_folder(self, folder: str) -> None:
        if self.info_bar.kind == "welcome":
            self.info_bar.dismiss()
        if self._demo_undo is not None and Path(folder) != demo_dataset_dir().absolute():
            self._undo_demo_settings()
        self.settings.setValue("last_data_folder", folder)
        self.scan_dataset()
        self._update_actions()

    def show_setting_error(self, error: Exception) -> None:
        """A refused setting: say which one (by its label) and put the cursor on it."""
        import re
        from .forms import field_label
        message = str(error)
        m = re.search(r"setting '(\w+)'", message)
        spec, form = self.model_panel.current_spec(), self.model_panel.form
        f = spec.field(m.group(1)) if (m and spec is not None) else None
        if f is None or form is None or f.name not in form.editors:
            self.show_error(message)
            return
        editor = form.editors[f.name]
        if form.advanced_box is not None and f.advanced:
            form.advanced_box.setChecked(True)
        self.model_dock.show()
        self.model_panel.form_holder.ensureWidgetVisible(editor)
        editor.setFocus()
        self.show_error(f"Check “{field_label(f)}” in the Model panel: {message}", kind="setting")

    def _on_model_changed(self, _model_id: str) -> None:
        self._update_actions()

    def scan_dataset(self) -> None:
        """Prepare the chosen folder in the background: counts, thumbnails, skipped files.

        It also fills the dataset cache, so pressing Start afterwards is a file read.
        """
        folder = self.dataset_panel.folder
        if not folder or self.pm is None or self.model_panel.form is None:
            return
        try:
            cfg = self.model_panel.config()
        except ConfigError as e:
            self.show_error(str(e))
            return
        res, ch, fit = int(cfg.get("resolution", 64)), int(cfg.get("channels", 3)), cfg.get(
            "fit", "crop")
        self._scan_token += 1
        token = self._scan_token
        self.dataset_panel.set_busy(f"Reading images in {folder}…")

        def work():
            from ganstudio.core.data import load_dataset
            images, report = load_dataset(folder, res, ch, fit)
            return report, images[:32].numpy().copy()

        def done(result):
            if token == self._scan_token:
                self.dataset_panel.set_report(*result)

        def failed(msg, _tb):
            if token == self._scan_token:
                self.dataset_panel.set_error(msg)

        self.tasks.start(work, done, failed)

    # ============================================================================ training
    @property
    def training(self) -> bool:
        return self.session is not None and self.session.running

    def _set_state(self, state: str) -> None:
        self.state = state
        self.status_labels["state"].setText(state if self.pm is not None or state != "idle"
                                            else "loading models…")
        self._update_actions()
        self.stateChanged.emit(state)

    def _update_actions(self) -> None:
        a = self.actions_by_key
        st = self.state
        ready = self.pm is not None and self.model_panel.current_spec() is not None
        a["start"].setEnabled(st == "idle" and ready)
        a["pause"].setEnabled(st == "running")
        a["resume"].setEnabled(st == "paused")
        a["stop"].setEnabled(st in ("preparing", "running", "paused"))
        a["checkpoint"].setEnabled(st in ("running", "paused"))
        a["export"].setEnabled(self.run_dir is not None or self.browser.selected() is not None)

    def _new_run_dir(self, spec_id: str) -> Path:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        root = Path(self.browser.root or default_runs_root())
        path = root / f"{spec_id}-{stamp}"
        n = 1
        while path.exists():
            n += 1
            path = root / f"{spec_id}-{stamp}-{n}"
        return path

    def start_training(self, resume_dir: str | Path | None = None) -> bool:
        """Start (or, with ``resume_dir``, resume) a run in a worker thread."""
        from .worker import TrainingSession, TrainingWorker
        if self.state != "idle" or self.training:
            return False
        spec = self.model_panel.current_spec()
        if self.pm is None or spec is None:
            self.show_error("The models are still loading; try again in a moment.")
            return False
        try:
            config = self.model_panel.config()
        except ConfigError as e:
            self.show_setting_error(e)
            return False
        resume = False
        if resume_dir is not None:
            run_dir, resume = Path(resume_dir), True
        elif self._first_run_dir:
            run_dir = Path(self._first_run_dir).expanduser().absolute()
            rf = RunFolder(run_dir)
            resume = rf.exists() and rf.has_checkpoint()
            self._first_run_dir = None
        else:
            run_dir = self._new_run_dir(spec.id)
        data = self.dataset_panel.folder
        if data is None and not resume:
            self.show_error("Choose a folder of images first (or use the demo images).",
                            [("Use demo images", self.use_demo_dataset)])
            return False
        self.stop_watching()
        self.info_bar.dismiss()
        self.run_dir = run_dir
        self.events_seen = {}
        self._live_rows = []
        self._ips = self._steps_per_s = 0.0
        self._last_metric = None
        self.last_error = ""
        self.chart.clear()
        self.samples.clear()
        worker = TrainingWorker(spec, run_dir, data_folder=data, overrides=config,
                                settings=self.model_panel.engine_settings(), resume=resume,
                                plugin_manager=self.pm)
        for name in ("preparing", "prepared", "started", "metrics", "samples", "checkpoint",
                     "warning", "paused", "resumed", "finished", "failed", "done"):
            getattr(worker, name).connect(getattr(self, f"_on_{name}"))
        self.session = TrainingSession(worker)
        self.setWindowTitle(f"GAN Studio — {run_dir.name}")
        self._set_state("preparing")
        self.status_labels["step"].setText("preparing…")
        self.session.start()
        if resume:
            self._load_history(run_dir)  # the run's earlier metrics and grids
        return True

    def pause_training(self) -> None:
        if self.session is not None and self.state == "running":
            self.session.worker.pause()

    def resume_training(self) -> None:
        if self.session is not None and self.state == "paused":
            self.session.worker.resume_training()

    def stop_training(self) -> None:
        if self.session is not None and self.state in ("preparing", "running", "paused"):
            self.session.worker.stop()
            self._set_state("stopping")
            self.statusBar().showMessage("Stopping: writing a checkpoint…")

    def checkpoint_now(self) -> None:
        if self.session is not None and self.state in ("running", "paused"):
            self.session.worker.checkpoint_now()
            self.statusBar().showMessage("Writing a checkpoint…", 3000)

    def rollback(self, factor: float = 0.5) -> None:
        if self.session is not None:
            self.session.worker.rollback(factor)
            self.statusBar().showMessage(f"Rolling back; learning rates ×{factor}", 5000)

    def resume_run(self, run_dir: str | Path) -> bool:
        """Resume a past run from the run browser: its model, settings and data."""
        if self.training:
            self.show_error("Training is running; stop it before resuming another run.")
            return False
        try:
            self._prefill_from_run(run_dir)
        except UserError as e:
            self.show_error(str(e))
            return False
        self.tabs.setCurrentIndex(0)
        return self.start_training(resume_dir=run_dir)

    def _load_history(self, run_dir: Path) -> None:
        """Existing metrics and grids of a resumed run, read in the background."""
        def work():
            rows, _ = RunFolder(run_dir).read_metrics(0)
            return rows, [(s, str(p)) for s, p in RunFolder(run_dir).list_samples()]

        def done(result):
            rows, frames = result
            if self.run_dir != run_dir:
                return
            first_live = self._live_rows[0]["step"] if self._live_rows else None
            old = [r for r in rows if first_live is None or r["step"] < first_live]
            self.chart.clear()
            self.chart.add_rows(old)
            self.chart.add_rows(self._live_rows)
            live = [f for f in self.samples.frames]
            seen = {s for s, _ in live}
            merged = [f for f in frames if f[0] not in seen] + live
            merged.sort(key=lambda f: f[0])
            self.samples.frames = merged
            self.samples._set_slider()

        self.tasks.start(work, done)

    # -- worker signals (GUI thread, queued) ---------------------------------------------------
    def _count(self, name: str) -> None:
        self.events_seen[name] = self.events_seen.get(name, 0) + 1

    def _on_preparing(self, done: int, total: int) -> None:
        self.status_labels["step"].setText(f"preparing images {done}/{total}")

    def _on_prepared(self, report: Any) -> None:
        self._count("prepared")
        if report is not None and report.folder != "<in memory>":
            self.dataset_panel.set_report(report)

    def _on_started(self, event: Any) -> None:
        self._count("started")
        self.total_steps = event.total_steps
        self.status_labels["device"].setText(device_text(event.device, getattr(event, "precision", "fp32")))
        self.status_labels["device"].setToolTip(event.device_reason)
        self.status_labels["step"].setText(f"step {event.step:,} / {event.total_steps:,}")
        self._set_state("running")
        verb = "Resumed" if event.resumed else "Started"
        self.studio.runs_changed.emit()
        self.statusBar().showMessage(f"{verb} {event.model_id} in {event.run_dir}", 5000)

    def _on_metrics(self, event: Any, memory: Any) -> None:
        self._count("metrics")
        row = {"step": event.step, **event.values}
        self._live_rows.append(row)
        self.chart.add_rows([row])
        self.last_values = dict(event.values)
        ips = event.images_per_sec
        self._ips = ips if self._ips == 0 else 0.8 * self._ips + 0.2 * ips
        if self._last_metric is not None:
            ds, dt = event.step - self._last_metric[0], event.time - self._last_metric[1]
            if dt > 0 and ds >= 0:
                sps = ds / dt
                self._steps_per_s = sps if self._steps_per_s == 0 else (
                    0.9 * self._steps_per_s + 0.1 * sps)
        self._last_metric = (event.step, event.time)
        left = event.total_steps - event.step
        eta = left / self._steps_per_s if self._steps_per_s > 0 else float("nan")
        lab = self.status_labels
        lab["step"].setText(f"step {event.step:,} / {event.total_steps:,}")
        lab["speed"].setText(f"{self._ips:,.0f} img/s")
        lab["elapsed"].setText(f"elapsed {format_duration(event.time)}")
        lab["eta"].setText(f"ETA {format_duration(eta)}")
        lab["memory"].setText(f"memory {fmt_bytes(memory)}")
        prog = progress_text(event.values)
        lab["progress"].setText(prog)
        lab["progress"].setVisible(bool(prog))

    def _on_samples(self, event: Any) -> None:
        self._count("samples")
        self.samples.add_grid(event.step, event.grid, event.path)

    def _on_checkpoint(self, event: Any) -> None:
        self._count("checkpoint")
        self.statusBar().showMessage(f"Checkpoint saved at step {event.step:,}: "
                                     f"{Path(event.path).name}", 5000)

    def _on_warning(self, event: Any) -> None:
        self._count("warning")
        self.chart.add_marker(event.step, event.kind, event.message)
        if event.kind == "nan":
            self.info_bar.show_message(
                f"Training paused: {gui_wording(event.message)}", "error",
                [("Roll back to last checkpoint with lower learning rate",
                  lambda: self.rollback(0.5)),
                 ("Resume anyway", self.resume_training),
                 ("Stop", self.stop_training)], kind="nan")
        elif event.kind in ("collapse", "imbalance"):
            text = gui_wording(event.message)
            if f"step {event.step}" not in text.lower():
                text = f"Step {event.step:,}: {text}"
            self.info_bar.show_message(text[:1].upper() + text[1:], "warning", kind=event.kind)
        else:
            self.statusBar().showMessage(gui_wording(event.message), 8000)

    def _on_paused(self, event: Any) -> None:
        self._count("paused")
        self._set_state("paused")
        self.status_labels["speed"].setText("")
        self.status_labels["eta"].setText("")

    def _on_resumed(self, event: Any) -> None:
        self._count("resumed")
        if self.info_bar.kind == "nan":
            self.info_bar.dismiss()
        if self.state != "stopping":
            self._set_state("running")

    def _on_finished(self, event: Any) -> None:
        self._count("finished")
        self.last_finished = event
        saved = f"; checkpoint {Path(event.checkpoint).name}" if event.checkpoint else ""
        self.statusBar().showMessage(f"Training {event.reason} at step {event.step:,}{saved}",
                                     10000)
        if event.reason == "completed":
            self.info_bar.show_message(
                f"Training completed at step {event.step:,}. Export the generator, a "
                "time-lapse or samples with Export…", "info",
                [("Export…", lambda: self.show_export_dialog())], kind="finished")

    def _on_failed(self, event: Any) -> None:
        self._count("failed")
        self.last_error = event.message
        actions = []
        if event.suggestion and "=" in event.suggestion and self.run_dir is not None:
            actions.append((f"Apply {event.suggestion} and resume",
                            lambda s=event.suggestion: self.apply_suggestion(s)))
        kept = self.run_dir is not None and RunFolder(self.run_dir).exists()
        where = f" The run folder keeps what was done: {self.run_dir}" if kept else ""
        self.show_error(f"Training stopped with an error: {event.message}.{where}", actions,
                        kind="failed")

    def _on_done(self) -> None:
        session = self.session
        if session is not None:
            session.join(10_000)
        self.session = None
        self._set_state("idle")
        self.status_labels["speed"].setText("")
        self.status_labels["eta"].setText("")
        if self.run_dir is not None:
            self.browser.refresh()
            self.studio.runs_changed.emit()
        if self._close_pending:
            QTimer.singleShot(0, self.close)

    def apply_suggestion(self, suggestion: str) -> bool:
        """Apply e.g. ``batch_size=32`` to the form and resume the failed run."""
        run_dir = self.run_dir
        try:
            values = parse_set_args([suggestion])
            if self.model_panel.form is None:
                return False
            unknown = self.model_panel.form.set_values(values)
            if unknown:
                raise ConfigError(f"the suggestion names an unknown setting: {unknown[0]}")
        except UserError as e:
            self.show_error(str(e))
            return False
        if run_dir is not None and RunFolder(run_dir).exists():
            return self.start_training(resume_dir=run_dir)
        return self.start_training()

    def show_error(self, message: str, actions: list = (), kind: str = "error") -> None:
        self.last_error = message
        self.info_bar.show_message(message, "error", list(actions), kind=kind)

    # ============================================================================ runs
    def _on_tab(self, index: int) -> None:
        if self.tabs.widget(index) is self.browser:
            self.browser.refresh()
        self._update_actions()

    def _ask_open_run(self, watch: bool = False) -> None:
        from PySide6.QtWidgets import QFileDialog
        path = QFileDialog.getExistingDirectory(self, "Run folder", self.browser.root)
        if path:
            (self.watch_run if watch else self.open_run)(path)

    def _ask_watch_run(self) -> None:
        self._ask_open_run(watch=True)

    def open_run(self, run_dir: str | Path) -> bool:
        """Show a past run's charts and grids (read in the background)."""
        if self.training:
            self.show_error("Training is running; stop it before opening another run.")
            return False
        self.stop_watching()
        run_dir = Path(run_dir)

        def work():
            rf = RunFolder(run_dir)
            info = rf.read_info()
            rows, _ = rf.read_metrics(0)
            return info, rows, [(s, str(p)) for s, p in rf.list_samples()]

        def done(result):
            info, rows, frames = result
            self._show_run(run_dir, info)
            self.chart.add_rows(rows)
            self.samples.set_frames(frames)
            last = max([r["step"] for r in rows if isinstance(r.get("step"), int)]
                       + [s for s, _ in frames], default=None)
            if last is not None:
                total = f" / {self.total_steps:,}" if self.total_steps else ""
                self.status_labels["step"].setText(f"step {last:,}{total}")
            self.runOpened.emit(str(run_dir))

        self.tasks.start(work, done, lambda msg, _tb: self.show_error(msg))
        return True

    def _show_run(self, run_dir: Path, info: dict) -> None:
        self.run_dir = run_dir
        self.chart.clear()
        self.samples.clear()
        self.tabs.setCurrentIndex(0)
        self.setWindowTitle(f"GAN Studio — {run_dir.name}")
        self.status_labels["device"].setText(str(info.get("device", "")))
        self.total_steps = int(info.get("total_steps") or 0)
        self._update_actions()

    def watch_run(self, run_dir: str | Path, interval_ms: int = 1000) -> bool:
        """Follow a run that another process writes: new metrics and grids as they land."""
        from .watcher import RunWatcher
        if self.training:
            self.show_error("Training is running here; stop it before watching another run.")
            return False
        run_dir = Path(run_dir)
        if not RunFolder(run_dir).exists():
            self.show_error(f"{run_dir} is not a run folder (no run.json)")
            return False
        self.stop_watching()
        self._show_run(run_dir, {})
        w = RunWatcher(run_dir, interval_ms, self)
        w.tail.reset.connect(self.chart.clear)
        w.tail.rows.connect(self._on_watch_rows)
        w.tail.frames.connect(self._on_watch_frames)
        w.tail.grid.connect(self._on_watch_grid)
        w.tail.info.connect(self._on_watch_info)
        w.tail.error.connect(lambda msg: self.statusBar().showMessage(f"watch: {msg}", 5000))
        self.watcher = w
        w.start()
        self.status_labels["state"].setText(f"watching {run_dir.name}")
        return True

    def stop_watching(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
            if self.state == "idle":
                self.status_labels["state"].setText("ready" if self.pm else "loading models…")

    def _on_watch_rows(self, rows: list) -> None:
        self.chart.add_rows(rows)
        last = rows[-1]
        self.status_labels["step"].setText(
            f"step {last['step']:,}" + (f" / {self.total_steps:,}" if self.total_steps else ""))
        if isinstance(last.get("img_per_s"), (int, float)):
            self.status_labels["speed"].setText(f"{last['img_per_s']:,.0f} img/s")
        if isinstance(last.get("time"), (int, float)):
            self.status_labels["elapsed"].setText(f"elapsed {format_duration(last['time'])}")
        prog = progress_text({k: last[k] for k in PROGRESS_KEYS
                              if isinstance(last.get(k), (int, float))})
        self.status_labels["progress"].setText(prog)
        self.status_labels["progress"].setVisible(bool(prog))

    def _on_watch_frames(self, frames: list) -> None:
        if self.samples.live.isChecked():
            self.samples.frames = [(int(s), str(p)) for s, p in frames]
            self.samples._set_slider()
        else:
            self.samples.frames = [(int(s), str(p)) for s, p in frames]
            self.samples._set_slider(keep=True)

    def _on_watch_grid(self, step: int, path: str, array: Any) -> None:
        self.samples.add_grid(step, array, path)

    def _on_watch_info(self, info: dict) -> None:
        self.total_steps = int(info.get("total_steps") or 0)
        self.status_labels["device"].setText(str(info.get("device", "")))

    # ============================================================================ export
    def show_export_dialog(self, run_dir: str | Path | None = None) -> None:
        run_dir = Path(run_dir) if run_dir else self.run_dir
        if run_dir is None:
            self.show_error("Train or open a run first; exports come from a run.")
            return
        has_grid = self.samples.current_image() is not None and (
            run_dir == self.run_dir)
        dlg = ExportDialog(run_dir.name, has_grid, str(self.settings.value("export_dir", "")),
                           self)
        if dlg.exec() != ExportDialog.Accepted:
            return
        path = dlg.target()
        if not path:
            self.show_error("Choose where to save the export.")
            return
        self.settings.setValue("export_dir", str(Path(path).parent))
        self.export(dlg.kind(), run_dir, path, dlg.count.value())

    def export(self, kind: str, run_dir: str | Path, path: str | Path, n: int = 64) -> None:
        """Run one export in the background; ``exportDone`` carries the written path."""
        from . import export as ex
        run_dir, pm = Path(run_dir), self.pm
        if kind == "grid":
            img = self.samples.current_image()
            if img is None:
                self.show_error("There is no grid on screen to export.")
                return
            array = (self.samples.current_array if self.samples.current_array is not None
                     else qimage_to_array(img))
            work = lambda: ex.export_grid(array, path)  # noqa: E731
        elif kind == "samples":
            work = lambda: ex.export_samples(run_dir, pm, n, path)[0].parent  # noqa: E731
        elif kind == "timelapse":
            work = lambda: ex.export_timelapse(run_dir, path)  # noqa: E731
        elif kind == "generator":
            work = lambda: ex.export_generator(run_dir, pm, path)  # noqa: E731
        else:
            raise ValueError(kind)
        self.statusBar().showMessage("Exporting…")

        def done(result):
            self.statusBar().showMessage(f"Exported to {result}", 8000)
            self.exportDone.emit(str(result))

        self.tasks.start(work, done,
                         lambda msg, _tb: self.show_error(f"Export failed: {msg}"))

    # ============================================================================ misc
    def _show_shortcuts(self) -> None:
        box = QMessageBox(QMessageBox.Information, "Keyboard shortcuts", shortcuts_html(),
                          QMessageBox.Ok, self)
        box.setTextFormat(Qt.RichText)
        box.exec()

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        self.dataset_panel.dragEnterEvent(event)

    def dropEvent(self, event) -> None:  # noqa: N802
        self.dataset_panel.dropEvent(event)

    def confirm_close(self) -> bool:
        """Ask before closing mid-run (tests replace this)."""
        answer = QMessageBox.question(
            self, "Training is running",
            "Training is running. Stop it, save a checkpoint and close?\n"
            "You can resume the run later from the Runs tab.",
            QMessageBox.Yes | QMessageBox.No, QMessageBox.Yes)
        return answer == QMessageBox.Yes

    def closeEvent(self, event) -> None:  # noqa: N802
        if self.training:
            if not self._close_pending:
                if not self.confirm_close():
                    event.ignore()
                    return
                self._close_pending = True
                self.session.worker.stop()
                self._set_state("stopping")
                self.info_bar.show_message("Stopping the run and writing a checkpoint; the "
                                           "window closes when it is saved.", "info")
            event.ignore()  # closes again from _on_done once the thread has ended
            return
        self.stop_watching()
        self.panel_host.shutdown()
        self.tasks.cancel_all()
        self.tasks.wait_all()
        if not self.probe:
            self.save_settings()
        self._closing_done = True
        event.accept()
