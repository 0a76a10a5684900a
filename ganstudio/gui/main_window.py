"""The studio's main window: it lays out the parts and connects them.

The parts hold their own state: :class:`~.training.TrainingController` (the
start / pause / stop state machine), :class:`~.run_viewer.RunViewer` (opening and
watching runs), :class:`~.demo.DemoSettings`, :class:`~.export_controller.ExportController`,
:class:`~.actions.WindowActions` (toolbar, menus, shortcuts), :class:`~.status.StatusLabels`
and :class:`~.panel_host.PanelHost` (the tabs, plugin panels included). The window
keeps the layout, the start-up (plugins load in the background), remembered
settings, the dataset scan, the message strip and closing.

Import cost matters here: this module pulls in Qt but not torch, pyqtgraph or any
plugin. Those load once the window is on screen (:meth:`MainWindow.start_loading`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import (QApplication, QDockWidget, QLabel, QMainWindow, QMessageBox,
                               QSplitter, QTabWidget, QVBoxLayout, QWidget)

from ganstudio.core.config import parse_set_args
from ganstudio.core.errors import ConfigError, UserError
from ganstudio.core.runs import RunFolder
from ganstudio.core.units import format_duration

from . import collector
from .actions import SHORTCUTS, WindowActions, shortcuts_html  # noqa: F401 - public names
from .dataset_panel import DatasetPanel
from .demo import DEMO_SETTINGS, DEMO_STEPS, DemoSettings  # noqa: F401 - public names
from .estimate_view import RunEstimator
from .export_controller import ExportController
from .grid import SamplePanel
from .model_panel import ModelPanel
from .options import (StudioOptions, default_runs_root, default_window_size,  # noqa: F401
                      restore_window, save_window)
from .panel_api import StudioAPI
from .panel_host import PanelHost
from .resources import demo_dataset_dir
from .run_browser import RunBrowser
from .run_viewer import RunViewer
from .status import StatusLabels
from .settings_memory import SettingsMemory
from .tasks import Tasks
from .theme import apply_theme, current_theme, icon
from .start_from import StartFrom
from .training import TrainingController
from .widgets import InfoBar


class MainWindow(QMainWindow):
    """GAN Studio's window."""

    stateChanged = Signal(str)
    pluginsLoaded = Signal()
    runOpened = Signal(str)
    exportDone = Signal(str)

    def __init__(self, options: StudioOptions | None = None, settings: QSettings | None = None,
                 *, lazy_chart: bool = False):
        super().__init__()
        collector.install()  # reference cycles (widgets among them) freed in this thread only
        self.options = options or StudioOptions()
        self.settings = settings if settings is not None else QSettings("GAN Studio", "studio")
        self.setWindowTitle("GAN Studio")
        self.setWindowIcon(icon("app"))
        self.setObjectName("mainWindow")
        self.setAcceptDrops(True)
        self.tasks = Tasks(self)
        self.pm: Any = None
        self._run_dir: Path | None = None          # the run being trained or viewed
        self.last_error = ""
        self.probe = False  # start-up probe: leave the user's settings alone
        self._close_pending = False
        self._runs_refresh_pending = False
        self.chart: Any = None

        self.studio = StudioAPI(self, self.tasks, current_run=lambda: self.run_dir,
                                runs_root=lambda: Path(self.browser.root or default_runs_root()),
                                plugin_manager=lambda: self.pm,
                                device=lambda: self.model_panel.device_choice()[0],
                                show_status=self.show_status, open_run=self.open_run)
        self._build_views()
        self.status = StatusLabels(self.statusBar())
        self.status_labels = self.status.labels
        self.trainer = TrainingController(self)
        self.trainer.stateChanged.connect(self.stateChanged)
        self.trainer.done.connect(self._on_training_done)
        self.trainer.progressed.connect(self._refresh_runs_soon)
        self.viewer = RunViewer(self)
        self.viewer.runOpened.connect(self.runOpened)
        self.start_from = StartFrom(self)   # "Start from this run…": the next run's weights
        self.demo = DemoSettings(self.model_panel, self.say, lambda: bool(self.options.steps))
        self.estimator = RunEstimator(self.model_panel, self.model_panel.estimate_box,
                                      self.tasks, idle=lambda: self.trainer.state == "idle")
        self.trainer.stateChanged.connect(
            lambda st: self.estimator.cancel() if st != "idle" else None)
        # the estimate also shows in the status bar, in view whatever the dock's scrolling
        self.estimator.estimated.connect(self._show_estimate_in_status)
        self.memory = SettingsMemory(self.settings, self.model_panel)
        self.exporter = ExportController(self, self.tasks, self.settings, self.samples,
                                         current_run=lambda: self.run_dir,
                                         plugin_manager=lambda: self.pm, say=self.say)
        self.exporter.done.connect(self._on_exported)
        self.exporter.failed.connect(lambda msg: self.show_error(msg, kind="export"))
        self._connect_views()
        if not lazy_chart:
            self.ensure_chart()
        self.window_actions = WindowActions(self, {
            "start": self.start_training, "start_from": self.start_from.choose_selected,
            "pause": self.trainer.pause,
            "resume": self.trainer.resume, "stop": self.trainer.stop,
            "checkpoint": self.trainer.checkpoint_now,
            "export": lambda: self.exporter.show_dialog(),
            "open_data": self.dataset_panel.choose_folder, "demo": self.use_demo_dataset,
            "open_run": self._ask_open_run, "watch_run": lambda: self._ask_open_run(True),
            "theme": self.set_theme}, [self.dataset_dock, self.model_dock])
        self.actions_by_key = self.window_actions.by_key
        self.buttons = self.window_actions.buttons
        self.theme_actions = self.window_actions.theme_actions
        self.toolbar = self.window_actions.toolbar
        restore_window(self)
        self.trainer.set_state("idle")

    # ============================================================================ parts
    # What tests and the scripts read of the training state, kept on the window.
    state = property(lambda self: self.trainer.state)
    session = property(lambda self: self.trainer.session)
    training = property(lambda self: self.trainer.training)
    events_seen = property(lambda self: self.trainer.events_seen)
    last_finished = property(lambda self: self.trainer.last_finished)
    watcher = property(lambda self: self.viewer.watcher)

    def start_training(self, resume_dir: str | Path | None = None) -> bool:
        return self.trainer.start(resume_dir)

    def stop_training(self) -> None:
        self.trainer.stop()

    def pause_training(self) -> None:
        self.trainer.pause()

    def resume_run(self, run_dir: str | Path) -> bool:
        return self.trainer.resume_run(run_dir)

    def open_run(self, run_dir: str | Path) -> bool:
        return self.viewer.open_run(run_dir)

    def watch_run(self, run_dir: str | Path, interval_ms: int = 1000) -> bool:
        return self.viewer.watch_run(run_dir, interval_ms)

    def stop_watching(self) -> None:
        self.viewer.stop_watching()

    def export(self, kind: str, run_dir: str | Path, path: str | Path, n: int = 64) -> None:
        self.exporter.export(kind, run_dir, path, n)

    def use_demo_dataset(self) -> None:
        folder = demo_dataset_dir()
        if not folder.is_dir():
            self.show_error(f"The demo images are missing ({folder}); "
                            "run resources/make_demo_dataset.py to create them.")
            return
        self.demo.apply()  # before the folder: the scan uses the resolution
        self.dataset_panel.set_folder(str(folder))

    # ============================================================================ messages
    @property
    def run_dir(self) -> Path | None:
        return self._run_dir

    def set_run(self, run_dir: str | Path | None) -> None:
        """The run the studio shows now; panels hear of it (``run_changed``)."""
        value = Path(run_dir) if run_dir is not None else None
        changed = value != self._run_dir
        self._run_dir = value
        if changed:
            self.studio.run_changed.emit(value)

    def say(self, text: str, ms: int = 5000) -> None:
        """A passing message in the status bar (``ms=0``: until the next one)."""
        if text:
            self.statusBar().showMessage(text, ms)
        else:
            self.statusBar().clearMessage()

    def show_error(self, message: str, actions: list = (), kind: str = "error") -> None:
        self.last_error = message
        self.info_bar.show_message(message, "error", list(actions), kind=kind)

    def clear_error(self, kind: str | None = None) -> None:
        """A later action succeeded: the error it supersedes goes (of ``kind`` only, if
        given)."""
        bar = self.info_bar
        if bar.isVisibleTo(self) and bar.level == "error" and kind in (None, bar.kind):
            bar.dismiss()

    def _show_estimate_in_status(self, estimate, _alternatives) -> None:
        if self.trainer.state == "idle":
            self.status_labels["eta"].setText(
                f"Estimate {format_duration(estimate.total_seconds)} on {estimate.device}")

    def show_status(self, text: str, level: str = "info") -> None:
        """For panels: info in the status bar, warnings and errors in the message strip."""
        if level == "info":
            self.say(text, 10_000)
        elif level == "error":
            self.show_error(text, kind="panel")
        else:
            self.info_bar.show_message(text, "warning", kind="panel")

    def show_setting_error(self, error: Exception) -> None:
        """A refused setting: say which one (by its label) and put the cursor on it."""
        label = self.model_panel.focus_setting(str(error))
        if label is None:
            self.show_error(str(error))
            return
        self.model_dock.show()
        self.show_error(f"Check “{label}” in the Model panel: {error}", kind="setting")

    def _on_exported(self, path: str) -> None:
        self.clear_error("export")
        self.exportDone.emit(path)

    def _report_panel_problem(self, message: str) -> None:
        self.say(message[:1].upper() + message[1:], 15_000)

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
        self.tabs = QTabWidget()
        self.tabs.setObjectName("mainTabs")
        self.panel_host = PanelHost(self.tabs, self._report_panel_problem)
        self.panel_host.add_tab(self.splitter, "Training", 0)
        self.panel_host.add_tab(self.browser, "Runs", 10)
        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(6, 6, 6, 0)
        lay.addWidget(self.info_bar)
        lay.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        self.dataset_panel = DatasetPanel()
        self.model_panel = ModelPanel()
        self.dataset_dock = QDockWidget("Dataset", self)
        self.dataset_dock.setObjectName("datasetDock")
        self.dataset_dock.setWidget(self.dataset_panel)
        self.model_dock = QDockWidget("Model", self)
        self.model_dock.setObjectName("modelDock")
        self.model_dock.setWidget(self.model_panel)
        self.addDockWidget(Qt.LeftDockWidgetArea, self.dataset_dock)
        self.addDockWidget(Qt.LeftDockWidgetArea, self.model_dock)
        self.splitDockWidget(self.dataset_dock, self.model_dock, Qt.Vertical)

    def _connect_views(self) -> None:
        b = self.browser
        b.openRequested.connect(lambda p: self.open_run(p))
        b.watchRequested.connect(lambda p: self.watch_run(p))
        b.resumeRequested.connect(lambda p: self.resume_run(p))
        b.exportRequested.connect(lambda p: self.exporter.show_dialog(p))
        b.renamed.connect(self._on_renamed)
        b.failed.connect(lambda msg: self.show_error(msg, kind="rename"))
        self.studio.runs_changed.connect(self._on_runs_changed)
        self.tabs.currentChanged.connect(self._on_tab)
        self.dataset_panel.folderChosen.connect(self._on_folder)
        self.dataset_panel.scanned.connect(self._on_scanned)
        self.dataset_panel.demoRequested.connect(self.use_demo_dataset)
        self.model_panel.modelChanged.connect(lambda _id: self.update_actions())

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

    def update_actions(self) -> None:
        ready = self.pm is not None and self.model_panel.current_spec() is not None
        self.window_actions.update(self.trainer.state, ready,
                            self.run_dir is not None or self.browser.selected() is not None)

    def set_theme(self, name: str) -> None:
        name = apply_theme(QApplication.instance(), name)
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
        self.status.set("state", "loading models…")
        self.tasks.start(lambda: get_plugin_manager(plugins_dir), self.set_plugin_manager,
                         lambda msg, _tb: self.show_error(f"Could not load the plugins: {msg}"))

    def set_plugin_manager(self, pm: Any) -> None:
        """Models are known: fill the model panel, add the plugins' tabs and apply the
        command line. The Model list holds the GANs trained on a folder; other kinds
        (style networks, image-to-image jobs) live in the tabs their plugins offer."""
        from ganstudio.core.devices import cuda_device_count
        from ganstudio.core.model import GAN  # torch is loaded by now
        self.pm = pm
        failed = [(name, info.error) for name, info in pm.plugins.items()
                  if info.status == "error"]
        self.model_panel.set_models(pm.models(kind=GAN), failed)
        self.model_panel.set_gpu_count(cuda_device_count())
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
            if spec is not None and spec.kind == GAN:
                self.model_panel.select_model(spec.id)
            elif spec is not None and opts.model:
                self.show_error(f"'{spec.id}' is not a GAN trained on a folder of images; "
                                "use its own tab")
        if opts.steps:
            self.model_panel.steps.setValue(int(opts.steps))
        if opts.device:
            self.model_panel.set_device(opts.device)
        if opts.precision:
            self.model_panel.set_precision(opts.precision)
        if self.demo.pending:
            self.demo.apply()
        follow_run = self._apply_run_option()
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
        self.trainer.show_state()
        self.update_actions()
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

    def _apply_run_option(self) -> str | None:
        """``--run RUN``: its settings in the panels; a run another process trains is
        followed (returned), otherwise shown, and Start resumes it."""
        opts = self.options
        if not (opts.run and RunFolder(opts.run).exists()):
            return None
        try:
            self.viewer.prefill(opts.run, keep_folder=bool(opts.data),
                                keep_steps=bool(opts.steps))
        except UserError as e:
            self.show_error(str(e))
            opts.autostart = False
        if RunFolder(opts.run).is_busy():
            # Another process trains it: follow it rather than fight over the folder.
            opts.autostart, self.trainer.first_run_dir = False, None
            return opts.run
        if not opts.autostart:
            self.open_run(opts.run)  # its charts and grids; Start resumes it
        return None

    # ============================================================================ dataset
    def _on_folder(self, folder: str) -> None:
        if self.info_bar.kind == "welcome":
            self.info_bar.dismiss()
        self.demo.folder_chosen(folder)
        self.settings.setValue("last_data_folder", folder)
        self.scan_dataset()
        self.update_actions()

    def _on_scanned(self, report) -> None:
        note = self.model_panel.fit_channels(report)
        if note:
            self.dataset_panel.add_note(note)

    def scan_dataset(self) -> None:
        """Read the chosen folder in the background at the model's resolution (it also
        fills the dataset cache, so pressing Start afterwards is a file read)."""
        if not self.dataset_panel.folder or self.pm is None or self.model_panel.form is None:
            return
        try:
            cfg = self.model_panel.config()
        except ConfigError as e:
            self.show_error(str(e))
            return
        self.dataset_panel.scan(self.tasks, int(cfg.get("resolution", 64)),
                                int(cfg.get("channels", 3)), str(cfg.get("fit", "crop")))

    # ============================================================================ runs
    def _on_tab(self, index: int) -> None:
        if self.tabs.widget(index) is self.browser:
            self.browser.refresh()
        self.update_actions()

    def _on_runs_changed(self) -> None:
        if self.tabs.currentWidget() is self.browser:
            self.browser.refresh()

    def _refresh_runs_soon(self) -> None:
        """A run saved a grid or checkpoint: the Runs table's step count follows, at most
        every two seconds and only while the table is on screen."""
        if self._runs_refresh_pending or self.tabs.currentWidget() is not self.browser:
            return
        self._runs_refresh_pending = True

        def refresh():
            self._runs_refresh_pending = False
            self._on_runs_changed()
        QTimer.singleShot(2000, self, refresh)

    def _on_renamed(self, run_dir: str, name: str) -> None:
        self.clear_error()
        self.studio.runs_changed.emit()
        if self.run_dir is not None and Path(run_dir) == self.run_dir.absolute():
            title = f"{name} ({self.run_dir.name})" if name else self.run_dir.name
            self.setWindowTitle(f"GAN Studio — {title}")

    def _ask_open_run(self, watch: bool = False) -> None:
        from PySide6.QtWidgets import QFileDialog
        path = QFileDialog.getExistingDirectory(self, "Run folder", self.browser.root)
        if path:
            (self.watch_run if watch else self.open_run)(path)

    # ============================================================================ closing
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

    def _on_training_done(self) -> None:
        if self._close_pending:
            QTimer.singleShot(0, self.close)

    def closeEvent(self, event) -> None:  # noqa: N802
        if self.training:
            if not self._close_pending:
                if not self.confirm_close():
                    event.ignore()
                    return
                self._close_pending = True
                self.trainer.stop()
                self.info_bar.show_message("Stopping the run and writing a checkpoint; the "
                                           "window closes when it is saved.", "info")
            event.ignore()  # closes again from _on_training_done once the thread has ended
            return
        self.stop_watching()
        self.panel_host.shutdown()
        self.estimator.stop()
        self.tasks.close()
        if not self.probe:
            save_window(self)
        event.accept()
