"""The run browser: past runs under a runs folder (thumbnail, name, model, dataset,
resolution, steps, date, device); runs can be renamed (a display name in run.json)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QFileDialog, QHBoxLayout, QLabel, QLineEdit,
                               QPushButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from ganstudio.core.errors import UserError
from ganstudio.core.runs import RunFolder, list_runs
from .tasks import Tasks

START_FROM_TIP = ("Train a new run from this run's network weights (fresh optimizers, "
                  "step 0), e.g. on a small second folder of images")

COLUMNS = ["Run", "Model", "Dataset", "Resolution", "Steps", "Created", "Device"]


def display_path(path: str | Path) -> str:
    """``path`` as a person reads it: a folder under the home folder as ``~/...``."""
    full = Path(path).expanduser()
    try:
        home = Path.home()
        rest = full.relative_to(home) if home != Path(home.anchor) else None
    except (RuntimeError, ValueError):  # no home folder, or not under it
        rest = None
    if rest is None:
        return str(full)
    return "~" if rest == Path(".") else str(Path("~") / rest)


def run_row(info: dict, folder_name: str, steps: int, created: str) -> list[str]:
    """The table's texts for one run (run.json's ``info``)."""
    dataset = info.get("dataset") if isinstance(info.get("dataset"), dict) else {}
    folder = dataset.get("folder") or ""
    images = dataset.get("images")
    data = Path(folder).name if folder else ""
    if data and isinstance(images, int):
        data += f" ({images:,})"
    res = dataset.get("resolution") or (info.get("config") or {}).get("resolution")
    total = info.get("total_steps")
    return [str(info.get("display_name") or folder_name),
            str(info.get("model_name") or info.get("model_id", "")), data,
            f"{res}×{res}" if isinstance(res, int) else "",
            f"{steps:,}" + (f" / {total:,}" if isinstance(total, int) else ""),
            created.replace("T", " ")[:19], str(info.get("device", ""))]


def scan_runs(root: str) -> list[tuple[Any, QImage | None]]:
    """(RunSummary, thumbnail) for every run below ``root``; runs in a worker thread."""
    out = []
    for summary in list_runs(root):
        thumb = None
        if summary.thumbnail is not None:
            img = QImage(str(summary.thumbnail))
            if not img.isNull():
                thumb = img.scaled(56, 56, Qt.KeepAspectRatio, Qt.FastTransformation)
        out.append((summary, thumb))
    return out


class RunBrowser(QWidget):
    openRequested = Signal(str)
    watchRequested = Signal(str)
    resumeRequested = Signal(str)
    startFromRequested = Signal(str)   # a new run from this run's network weights
    exportRequested = Signal(str)
    refreshed = Signal(int)
    renamed = Signal(str, str)     # run folder, new display name ("" = none)
    failed = Signal(str)           # a message for the window's message strip
    rootChanged = Signal(str)

    def __init__(self, tasks: Tasks, parent: QWidget | None = None):
        super().__init__(parent)
        self.tasks = tasks
        self.root = ""
        self.root_edit = QLineEdit()
        self.root_edit.setReadOnly(True)
        self.root_edit.setObjectName("runsRoot")
        choose = QPushButton("Runs folder…")
        choose.clicked.connect(self._choose_root)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        top = QHBoxLayout()
        top.addWidget(QLabel("Runs in"))
        top.addWidget(self.root_edit, 1)
        top.addWidget(choose)
        top.addWidget(self.refresh_button)
        self.tree = QTreeWidget()
        self.tree.setObjectName("runTree")
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.setIconSize(QSize(56, 56))
        self.tree.setRootIsDecorated(False)
        self.tree.setSelectionMode(QAbstractItemView.SingleSelection)
        self.tree.itemDoubleClicked.connect(lambda *_: self._emit(self.openRequested))
        self.tree.itemSelectionChanged.connect(self.update_buttons)
        self.tree.setContextMenuPolicy(Qt.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        #: (run folder, run.json info) -> why "Start from this run…" is not offered, or
        #: None; set by the window (it knows the models)
        self.start_from_check: Callable[[str, dict | None], str | None] = \
            lambda _path, _info: "The models are still loading."
        self.infos: dict[str, dict] = {}
        self.buttons = {}
        bottom = QHBoxLayout()
        for key, text, signal, tip in (
                ("open", "Open", self.openRequested, "Show the run's charts and grids"),
                ("watch", "Watch live", self.watchRequested,
                 "Follow a run that another process (e.g. the command line) is writing"),
                ("resume", "Resume training", self.resumeRequested,
                 "Continue training from the run's latest checkpoint"),
                ("start_from", "Start from this run…", self.startFromRequested,
                 START_FROM_TIP),
                ("export", "Export…", self.exportRequested,
                 "Export grids, samples, a time-lapse or the generator")):
            b = QPushButton(text)
            b.setToolTip(tip)
            b.setEnabled(False)
            b.clicked.connect(lambda _=False, s=signal: self._emit(s))
            self.buttons[key] = b
            if key != "export":
                bottom.addWidget(b)
        bottom.addStretch(1)
        # Exporting and renaming sit at the right, apart from the actions that open or
        # train a run; each row must still fit the narrowest window.
        rename = QPushButton("Rename…")
        rename.setToolTip("Give the selected run a name of your own (its folder keeps its "
                          "name)")
        rename.setEnabled(False)
        rename.clicked.connect(self._ask_rename)
        self.buttons["rename"] = rename
        self.status = QLabel("")
        status_row = QHBoxLayout()
        status_row.addWidget(self.status, 1)
        status_row.addWidget(self.buttons["export"])
        status_row.addWidget(rename)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.tree, 1)
        lay.addLayout(bottom)
        lay.addLayout(status_row)
        self.summaries: list[Any] = []

    def _choose_root(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder holding runs", self.root)
        if path:
            self.set_root(path)

    def set_root(self, root: str, refresh: bool = True) -> None:
        self.root = str(root)
        self.root_edit.setText(display_path(self.root))
        self.root_edit.setToolTip(self.root)
        self.rootChanged.emit(self.root)
        if refresh:
            self.refresh()

    def refresh(self) -> None:
        if not self.root:
            return
        self.status.setText("Reading runs…")
        self.tasks.start(lambda root=self.root: scan_runs(root), self._fill,
                         lambda msg, _tb: self.status.setText(f"Cannot read runs: {msg}"))

    def _fill(self, found: list) -> None:
        self.tree.clear()
        self.summaries = [s for s, _ in found]
        self.infos = {str(s.path): s.info for s in self.summaries}
        keep = self.selected()
        for summary, thumb in found:
            item = QTreeWidgetItem(run_row(summary.info, summary.path.name, summary.steps,
                                           summary.created))
            item.setData(0, Qt.UserRole, str(summary.path))
            item.setToolTip(0, str(summary.path))
            folder = (summary.info.get("dataset") or {}).get("folder")
            if folder:
                item.setToolTip(2, str(folder))
            if thumb is not None:
                item.setIcon(0, QIcon(QPixmap.fromImage(thumb)))
            self.tree.addTopLevelItem(item)
        for col in range(len(COLUMNS)):
            self.tree.resizeColumnToContents(col)
        if keep:
            self.select(keep)
        self.status.setText(f"{len(found)} run(s)" if found else
                            "No runs here yet. Train one, or choose the folder that holds them.")
        self.update_buttons()
        self.refreshed.emit(len(found))

    def select(self, run_dir: str) -> bool:
        want = str(Path(run_dir).absolute())
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item.data(0, Qt.UserRole) == want:
                self.tree.setCurrentItem(item)
                return True
        return False

    def selected(self) -> str | None:
        item = self.tree.currentItem()
        return item.data(0, Qt.UserRole) if item is not None else None

    def start_from_problem(self, path: str | None) -> str | None:
        """Why the run at ``path`` cannot be started from (None: it can)."""
        if not path:
            return "Select a run first."
        return self.start_from_check(path, self.infos.get(path))

    def update_buttons(self) -> None:
        path = self.selected()
        for b in self.buttons.values():
            b.setEnabled(path is not None)
        b = self.buttons["start_from"]
        why = self.start_from_problem(path) if path is not None else None
        b.setEnabled(path is not None and why is None)
        b.setToolTip(why or START_FROM_TIP)

    def _context_menu(self, pos) -> None:
        from PySide6.QtWidgets import QMenu
        item = self.tree.itemAt(pos)
        if item is None:
            return
        self.tree.setCurrentItem(item)
        menu = QMenu(self)
        menu.setToolTipsVisible(True)
        for key in ("open", "watch", "resume", "start_from", "export", "rename"):
            b = self.buttons[key]
            a = menu.addAction(b.text())
            a.setObjectName(f"runMenu_{key}")
            a.setEnabled(b.isEnabled())
            a.setToolTip(b.toolTip())
            a.triggered.connect(b.click)
        self.context_menu = menu          # tests read it
        menu.popup(self.tree.viewport().mapToGlobal(pos))

    def _ask_rename(self) -> None:
        from PySide6.QtWidgets import QInputDialog
        path = self.selected()
        if not path:
            return
        item = self.tree.currentItem()
        name, ok = QInputDialog.getText(self, "Rename run", "Name (empty: the folder's name):",
                                        text=item.text(0) if item is not None else "")
        if ok:
            self.rename(path, name)

    def rename(self, run_dir: str, name: str) -> bool:
        """Set the run's display name (run.json, written atomically) and show it."""
        try:
            info = RunFolder(run_dir).set_display_name(name)
        except UserError as e:
            self.failed.emit(f"Cannot rename {Path(run_dir).name}: {e}")
            return False
        except OSError as e:
            self.failed.emit(f"Cannot rename {Path(run_dir).name}: {e.strerror or e}")
            return False
        shown = info.get("display_name", "")
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item.data(0, Qt.UserRole) == str(RunFolder(run_dir).path):
                item.setText(0, shown or Path(run_dir).name)
        self.renamed.emit(str(RunFolder(run_dir).path), shown)
        return True

    def _emit(self, signal) -> None:
        path = self.selected()
        if path:
            signal.emit(path)
