"""The studio's "Style transfer" tab.

Two modes share one preview and one chart:

* **Repaint**: pick a content picture and one or more style pictures (dialog,
  drag-and-drop, thumbnails, a blend weight per style), tune the settings and
  start. The optimisation runs in the engine on the studio's training worker
  (a QThread); previews arrive every few iterations, the content / style / TV
  losses go to the live chart, Stop keeps the best image so far. Before/after
  compare with a split slider; save the result.
* **Fast network**: train a feed-forward network for one style on a folder of
  content pictures (the same worker and engine, live grid and chart), and apply
  a trained network to pictures or whole folders in a background task.

VGG-19 weights: the panel says whether they are found; it offers the download
of torchvision's ImageNet file with a progress bar, or a local file.
"""
from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QPoint, QRect, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QApplication, QComboBox, QDoubleSpinBox,
                               QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QLineEdit, QListWidget, QListWidgetItem, QProgressBar,
                               QPushButton, QSizePolicy, QSlider, QSpinBox, QSplitter,
                               QTabWidget, QVBoxLayout, QWidget)

from ganstudio.core import events as ev
from ganstudio.core.data import IMAGE_EXTENSIONS
from ganstudio.core.errors import ConfigError, UserError

from .chart import MetricsChart
from .forms import SettingsForm, guard_wheel
from .grid import array_to_qimage
from .tasks import Tasks
from .worker import TrainingSession, TrainingWorker

STYLE_MODEL = "style-transfer"
FAST_MODEL = "fast-style"
LOSS_KEYS = ("loss", "content", "style", "tv")
THUMB = 72
#: Settings that have their own widgets in the panel (not in the generated form).
_OWN_FIELDS = {"content", "style", "style_blend", "vgg_weights"}


def _is_image(path: str) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _thumbnail(path: str, size: int = THUMB) -> QPixmap:
    pix = QPixmap(path)
    if pix.isNull():
        return QPixmap()
    return pix.scaled(size, size, Qt.KeepAspectRatio, Qt.SmoothTransformation)


def _dropped_paths(event) -> list[str]:
    md = event.mimeData()
    if not md.hasUrls():
        return []
    return [u.toLocalFile() for u in md.urls() if u.isLocalFile()]


class ImageDrop(QLabel):
    """A thumbnail that accepts dropped image files and opens a file dialog on click."""

    filesChosen = Signal(list)

    def __init__(self, prompt: str, multiple: bool = False, parent: QWidget | None = None):
        super().__init__(parent)
        self.prompt = prompt
        self.multiple = multiple
        self.setAcceptDrops(True)
        self.setAlignment(Qt.AlignCenter)
        self.setMinimumSize(THUMB + 16, THUMB + 16)
        self.setFrameShape(QLabel.StyledPanel)
        self.setToolTip(f"{prompt}: click to choose, or drop image files here")
        self.setText(prompt)
        self.setWordWrap(True)

    def show_image(self, path: str | None) -> None:
        pix = _thumbnail(path) if path else QPixmap()
        if pix.isNull():
            self.setPixmap(QPixmap())
            self.setText(self.prompt)
        else:
            self.setPixmap(pix)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt naming
        if any(_is_image(p) for p in _dropped_paths(event)):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = [p for p in _dropped_paths(event) if _is_image(p)]
        if paths:
            self.filesChosen.emit(paths if self.multiple else paths[:1])
            event.acceptProposedAction()

    def mousePressEvent(self, event) -> None:  # noqa: N802
        pattern = "Images (" + " ".join(f"*{e}" for e in sorted(IMAGE_EXTENSIONS)) + ")"
        if self.multiple:
            paths, _ = QFileDialog.getOpenFileNames(self, self.prompt, "", pattern)
        else:
            path, _ = QFileDialog.getOpenFileName(self, self.prompt, "", pattern)
            paths = [path] if path else []
        if paths:
            self.filesChosen.emit(paths)


class CompareView(QWidget):
    """Before/after: the result, with the original shown left of a movable split."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.before: QImage | None = None
        self.after: QImage | None = None
        self.split = 0.0  # 0: all "after"; 1: all "before"
        self.setMinimumSize(200, 160)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)

    def set_before(self, image: QImage | None) -> None:
        self.before = image
        self.update()

    def set_after(self, image: QImage | None) -> None:
        self.after = image
        self.update()

    def set_split(self, fraction: float) -> None:
        self.split = min(1.0, max(0.0, fraction))
        self.update()

    def target_rect(self) -> QRect:
        ref = self.after or self.before
        if ref is None or ref.isNull():
            return QRect()
        scale = min(self.width() / ref.width(), self.height() / ref.height())
        w, h = max(1, int(ref.width() * scale)), max(1, int(ref.height() * scale))
        return QRect((self.width() - w) // 2, (self.height() - h) // 2, w, h)

    def paintEvent(self, _event) -> None:  # noqa: N802
        p = QPainter(self)
        rect = self.target_rect()
        if rect.isNull():
            p.drawText(self.rect(), Qt.AlignCenter, "The result appears here")
            return
        p.setRenderHint(QPainter.SmoothPixmapTransform)
        if self.after is not None:
            p.drawImage(rect, self.after)
        if self.before is not None and self.split > 0:
            cut = int(rect.width() * self.split)
            src_w = int(self.before.width() * self.split)
            p.drawImage(QRect(rect.left(), rect.top(), cut, rect.height()), self.before,
                        QRect(0, 0, src_w, self.before.height()))
            p.setPen(QPen(Qt.white, 2))
            p.drawLine(QPoint(rect.left() + cut, rect.top()),
                       QPoint(rect.left() + cut, rect.bottom()))


class _StyleWorker(TrainingWorker):
    """The studio's training worker, plus the final image of an image job, taken in the
    training thread (the GUI thread never touches the device)."""

    result = Signal(object)  # (H, W, 3) uint8

    def _forward(self, event: ev.Event) -> None:
        if isinstance(event, ev.Finished):
            model = getattr(self.engine, "model", None)
            if model is not None and hasattr(model, "result_image"):
                try:
                    img = model.result_image()[0].detach().float().clamp(0, 1).cpu()
                    arr = (img * 255).round().byte().permute(1, 2, 0).contiguous().numpy()
                    self.result.emit(arr)
                except Exception as e:  # noqa: BLE001 - reported, the run still finishes
                    self.warning.emit(ev.Warning(f"could not take the result: {e}",
                                                 event.step))
        super()._forward(event)


class _DownloadSignals(QObject):
    progress = Signal(int, int)


class StylePanel(QWidget):
    """The style transfer tab. ``plugin_manager`` provides the style models."""

    jobStarted = Signal(str)        # model id
    jobFinished = Signal(str)       # "completed", "stopped" or "failed"
    resultReady = Signal()
    applyFinished = Signal(int)     # images written (-1 on error)
    message = Signal(str)           # every status line shown (tests, status bar)

    def __init__(self, plugin_manager: Any, parent: QWidget | None = None):
        super().__init__(parent)
        self.pm = plugin_manager
        self.session: TrainingSession | None = None
        self.worker: _StyleWorker | None = None
        self.tasks = Tasks(self)
        self.content_path: str | None = None
        self.styles: list[tuple[str, float]] = []
        self.fast_style_path: str | None = None
        self.result: np.ndarray | None = None
        self.run_dir: Path | None = None
        self.last_values: dict[str, float] = {}
        self._cancel_download = threading.Event()
        self._download_signals = _DownloadSignals()
        self._download_signals.progress.connect(self._on_download_progress)
        self.spec = self._find(STYLE_MODEL)
        self.fast_spec = self._find(FAST_MODEL)
        self._build()
        self.refresh_weights_status()
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    def _find(self, model_id: str):
        try:
            return self.pm.get_model(model_id)
        except UserError:
            return None

    # -- layout ------------------------------------------------------------------------------
    def _build(self) -> None:
        if self.spec is None:
            raise UserError("the style transfer plugin is not installed or failed to load "
                            "(see 'ganstudio plugins')")
        # Left: inputs and settings, in two mode tabs.
        self.modes = QTabWidget()
        self.modes.addTab(self._build_repaint(), "Repaint")
        if self.fast_spec is not None:
            self.modes.addTab(self._build_fast(), "Fast network")

        # VGG weights and device: shared by both modes.
        self.weights_edit = QLineEdit()
        self.weights_edit.setPlaceholderText("torchvision's ImageNet file in the torch cache")
        self.weights_edit.setToolTip("VGG-19 weights file with torchvision's key names "
                                     "(setting vgg_weights)")
        self.weights_edit.editingFinished.connect(self.refresh_weights_status)
        browse = QPushButton("File…")
        browse.clicked.connect(self._browse_weights)
        self.download_button = QPushButton("Download…")
        self.download_button.clicked.connect(self.start_download)
        self.weights_status = QLabel()
        self.weights_status.setWordWrap(True)
        self.download_bar = QProgressBar()
        self.download_bar.setVisible(False)
        self.cancel_download_button = QPushButton("Cancel")
        self.cancel_download_button.setVisible(False)
        self.cancel_download_button.clicked.connect(self._cancel_download.set)
        self.device_combo = QComboBox()
        self.device_combo.addItems(["auto", "cpu", "cuda", "mps"])
        guard_wheel(self.device_combo)
        wrow = QHBoxLayout()
        wrow.addWidget(self.weights_edit, 1)
        wrow.addWidget(browse)
        wrow.addWidget(self.download_button)
        drow = QHBoxLayout()
        drow.addWidget(self.download_bar, 1)
        drow.addWidget(self.cancel_download_button)
        vgg_box = QGroupBox("VGG-19 weights")
        vbl = QVBoxLayout(vgg_box)
        vbl.addLayout(wrow)
        vbl.addLayout(drow)
        vbl.addWidget(self.weights_status)
        dev = QHBoxLayout()
        dev.addWidget(QLabel("Device"))
        dev.addWidget(self.device_combo)
        dev.addStretch(1)
        vbl.addLayout(dev)

        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.modes, 1)
        ll.addWidget(vgg_box)

        # Right: compare view, split slider, buttons, chart.
        self.compare = CompareView()
        self.split_slider = QSlider(Qt.Horizontal)
        self.split_slider.setRange(0, 100)
        self.split_slider.setToolTip("Drag to compare: original on the left, result on the right")
        self.split_slider.valueChanged.connect(lambda v: self.compare.set_split(v / 100))
        self.save_button = QPushButton("Save result…")
        self.save_button.setEnabled(False)
        self.save_button.clicked.connect(self._save_dialog)
        self.status = QLabel("Choose a content picture and a style picture.")
        self.status.setWordWrap(True)
        comp_row = QHBoxLayout()
        comp_row.addWidget(QLabel("Before"))
        comp_row.addWidget(self.split_slider, 1)
        comp_row.addWidget(QLabel("After"))
        comp_row.addWidget(self.save_button)
        self.chart = MetricsChart()
        right = QSplitter(Qt.Vertical)
        top = QWidget()
        tl = QVBoxLayout(top)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(self.compare, 1)
        tl.addLayout(comp_row)
        tl.addWidget(self.status)
        right.addWidget(top)
        right.addWidget(self.chart)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 2)

        split = QSplitter(Qt.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        layout = QHBoxLayout(self)
        layout.addWidget(split)

    def _build_repaint(self) -> QWidget:
        page = QWidget()
        v = QVBoxLayout(page)
        self.content_drop = ImageDrop("Content picture")
        self.content_drop.filesChosen.connect(lambda paths: self.set_content(paths[0]))
        self.style_drop = ImageDrop("Add style pictures", multiple=True)
        self.style_drop.filesChosen.connect(lambda paths: [self.add_style(p) for p in paths])
        pickers = QHBoxLayout()
        pickers.addWidget(self.content_drop)
        pickers.addWidget(self.style_drop)
        v.addLayout(pickers)

        self.style_list = QListWidget()
        self.style_list.setIconSize(QPixmap(THUMB // 2, THUMB // 2).size())
        self.style_list.setSelectionMode(QAbstractItemView.SingleSelection)
        self.style_list.setMaximumHeight(110)
        self.style_list.currentRowChanged.connect(self._on_style_row)
        self.blend_spin = QDoubleSpinBox()
        self.blend_spin.setRange(0.0, 100.0)
        self.blend_spin.setSingleStep(0.1)
        self.blend_spin.setValue(1.0)
        self.blend_spin.setToolTip("Blend weight of the selected style (relative to the others)")
        self.blend_spin.valueChanged.connect(self._on_blend_changed)
        remove = QPushButton("Remove")
        remove.clicked.connect(self._remove_style)
        brow = QHBoxLayout()
        brow.addWidget(QLabel("Blend weight"))
        brow.addWidget(self.blend_spin)
        brow.addStretch(1)
        brow.addWidget(remove)
        v.addWidget(self.style_list)
        v.addLayout(brow)

        schema = [f for f in self.spec.schema if f.name not in _OWN_FIELDS]
        self.form = SettingsForm(schema)
        v.addWidget(self.form, 1)
        self.preview_every = QSpinBox()
        self.preview_every.setRange(1, 1000)
        self.preview_every.setValue(10)
        self.preview_every.setToolTip("Show the image every N iterations")
        prow = QHBoxLayout()
        prow.addWidget(QLabel("Preview every"))
        prow.addWidget(self.preview_every)
        prow.addWidget(QLabel("iterations"))
        prow.addStretch(1)
        v.addLayout(prow)
        guard_wheel(self.blend_spin, self.preview_every)  # the tab scrolls; values stay put
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop (keep best)")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop)
        row = QHBoxLayout()
        row.addWidget(self.start_button)
        row.addWidget(self.stop_button)
        v.addLayout(row)
        self.setAcceptDrops(True)
        return page

    def _build_fast(self) -> QWidget:
        page = QWidget()
        v = QVBoxLayout(page)
        train = QGroupBox("Train a network for one style")
        f = QFormLayout(train)
        self.fast_style_drop = ImageDrop("Style picture")
        self.fast_style_drop.filesChosen.connect(lambda p: self.set_fast_style(p[0]))
        self.fast_data = QLineEdit()
        self.fast_data.setPlaceholderText("folder of content pictures")
        self.fast_run = QLineEdit()
        self.fast_run.setPlaceholderText("run folder to write")
        self.fast_steps = QSpinBox()
        self.fast_steps.setRange(1, 10_000_000)
        self.fast_steps.setValue(20_000)
        f.addRow("Style", self.fast_style_drop)
        f.addRow("Content folder", self._with_folder_browse(self.fast_data))
        f.addRow("Run folder", self._with_folder_browse(self.fast_run))
        f.addRow("Steps", self.fast_steps)
        self.fast_form = SettingsForm([x for x in self.fast_spec.schema
                                       if x.name not in _OWN_FIELDS])
        f.addRow(self.fast_form)
        self.fast_train_button = QPushButton("Train")
        self.fast_train_button.clicked.connect(self.start_fast_training)
        self.fast_stop_button = QPushButton("Stop")
        self.fast_stop_button.setEnabled(False)
        self.fast_stop_button.clicked.connect(self.stop)
        tr = QHBoxLayout()
        tr.addWidget(self.fast_train_button)
        tr.addWidget(self.fast_stop_button)
        f.addRow(tr)
        v.addWidget(train, 1)

        apply_box = QGroupBox("Apply a trained network")
        a = QFormLayout(apply_box)
        self.apply_net = QLineEdit()
        self.apply_net.setPlaceholderText("run folder of a trained fast-style network")
        self.apply_inputs = QLineEdit()
        self.apply_inputs.setPlaceholderText("pictures or folders, separated by '|'")
        self.apply_out = QLineEdit()
        self.apply_out.setPlaceholderText("output folder")
        self.apply_size = QSpinBox()
        self.apply_size.setRange(0, 8192)
        self.apply_size.setSpecialValueText("original size")
        a.addRow("Network", self._with_folder_browse(self.apply_net))
        a.addRow("Pictures", self._with_inputs_browse(self.apply_inputs))
        a.addRow("Output folder", self._with_folder_browse(self.apply_out))
        a.addRow("Long side", self.apply_size)
        self.apply_button = QPushButton("Apply")
        self.apply_button.clicked.connect(self.apply_network)
        a.addRow(self.apply_button)
        v.addWidget(apply_box)
        guard_wheel(self.fast_steps, self.apply_size)  # the tab scrolls; values stay put
        return page

    def _with_folder_browse(self, edit: QLineEdit) -> QWidget:
        w = QWidget()
        h = QHBoxLayout(w)
        h.setContentsMargins(0, 0, 0, 0)
        h.addWidget(edit, 1)
        b = QPushButton("…")
        b.setMaximumWidth(32)
        b.clicked.connect(lambda: self._pick_folder(edit))
        h.addWidget(b)
        return w

    def _with_inputs_browse(self, edit: QLineEdit) -> QWidget:
        w = self._with_folder_browse(edit)
        files = QPushButton("Files…")
        files.clicked.connect(lambda: self._pick_files(edit))
        w.layout().addWidget(files)
        return w

    def _pick_folder(self, edit: QLineEdit) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a folder", edit.text())
        if path:
            edit.setText(path)

    def _pick_files(self, edit: QLineEdit) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Choose pictures")
        if paths:
            edit.setText("|".join(paths))

    # -- inputs ------------------------------------------------------------------------------
    def set_content(self, path: str) -> None:
        self.content_path = str(path)
        self.content_drop.show_image(self.content_path)
        img = QImage(self.content_path)
        self.compare.set_before(None if img.isNull() else img)
        self._say(f"Content: {Path(path).name}")

    def add_style(self, path: str, weight: float = 1.0) -> None:
        path = str(path)
        if "|" in path:
            self._say(f"The path {path} contains '|', which separates styles; rename it.")
            return
        self.styles.append((path, float(weight)))
        item = QListWidgetItem(self._style_label(path, weight))
        pix = _thumbnail(path, THUMB // 2)
        if not pix.isNull():
            item.setIcon(QIcon(pix))
        item.setToolTip(path)
        self.style_list.addItem(item)
        self.style_list.setCurrentRow(self.style_list.count() - 1)
        self.style_drop.show_image(path)

    @staticmethod
    def _style_label(path: str, weight: float) -> str:
        return f"{Path(path).name}   ×{weight:g}"

    def _on_style_row(self, row: int) -> None:
        if 0 <= row < len(self.styles):
            self.blend_spin.blockSignals(True)
            self.blend_spin.setValue(self.styles[row][1])
            self.blend_spin.blockSignals(False)

    def _on_blend_changed(self, value: float) -> None:
        self.set_style_weight(self.style_list.currentRow(), value)

    def set_style_weight(self, row: int, weight: float) -> None:
        if 0 <= row < len(self.styles):
            path = self.styles[row][0]
            self.styles[row] = (path, float(weight))
            self.style_list.item(row).setText(self._style_label(path, weight))

    def _remove_style(self) -> None:
        row = self.style_list.currentRow()
        if 0 <= row < len(self.styles):
            self.styles.pop(row)
            self.style_list.takeItem(row)
            self.style_drop.show_image(self.styles[-1][0] if self.styles else None)

    def set_fast_style(self, path: str) -> None:
        self.fast_style_path = str(path)
        self.fast_style_drop.show_image(self.fast_style_path)

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if any(_is_image(p) for p in _dropped_paths(event)):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        """Dropped on the panel: the first picture is the content if none yet, others styles."""
        for p in (p for p in _dropped_paths(event) if _is_image(p)):
            if self.content_path is None:
                self.set_content(p)
            else:
                self.add_style(p)
        event.acceptProposedAction()

    # -- VGG weights -------------------------------------------------------------------------
    def _tools(self) -> Any:
        from ganstudio.cli.style import style_tools
        return style_tools(self.pm, STYLE_MODEL)

    def _browse_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "VGG-19 weights", "",
                                              "Weights (*.pth *.pt *.safetensors);;All (*)")
        if path:
            self.weights_edit.setText(path)
            self.refresh_weights_status()

    def refresh_weights_status(self) -> bool:
        """Say whether VGG-19 weights are available; True when they are."""
        tools = self._tools()
        try:
            path = tools.find_weights(self.weights_edit.text().strip() or None)
        except UserError as e:
            self.weights_status.setText(str(e))
            self.download_button.setEnabled(not self.weights_edit.text().strip())
            return False
        self.weights_status.setText(f"Using {path}")
        self.download_button.setEnabled(False)
        return True

    def _weights_hint(self) -> str:
        text = self.weights_status.text()
        if self.download_button.isEnabled():
            text += " — or press Download… to fetch it now."
        return text

    def start_download(self) -> None:
        """Download torchvision's VGG-19 file in a background task, with a progress bar."""
        tools = self._tools()
        self._cancel_download.clear()
        self.download_bar.setRange(0, 0)
        self.download_bar.setVisible(True)
        self.cancel_download_button.setVisible(True)
        self.download_button.setEnabled(False)
        self._say(f"Downloading {tools.VGG19_FILE} ({tools.VGG19_SIZE_MB} MB)…")
        signals = self._download_signals

        def work() -> str:
            return str(tools.download_vgg_weights(
                progress=lambda done, total: signals.progress.emit(done // 1024, total // 1024),
                should_cancel=self._cancel_download.is_set))

        self.tasks.start(work, self._on_download_done, self._on_download_error)

    def _on_download_progress(self, done_kb: int, total_kb: int) -> None:
        if total_kb > 0:
            self.download_bar.setRange(0, total_kb)
            self.download_bar.setValue(min(done_kb, total_kb))

    def _end_download(self) -> None:
        self.download_bar.setVisible(False)
        self.cancel_download_button.setVisible(False)

    def _on_download_done(self, path: str) -> None:
        self._end_download()
        self.refresh_weights_status()
        self._say(f"VGG-19 weights saved to {path}")

    def _on_download_error(self, message: str, _tb: str) -> None:
        self._end_download()
        self.refresh_weights_status()
        self.download_button.setEnabled(True)
        self._say(message)

    # -- running -----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.session is not None and self.session.running

    def repaint_overrides(self) -> dict[str, Any]:
        """The style-transfer settings of the form and the pickers (raises UserError)."""
        if not self.content_path:
            raise UserError("choose a content picture first")
        if not self.styles:
            raise UserError("add at least one style picture")
        values = self.form.values()
        values.update(content=self.content_path,
                      style="|".join(p for p, _ in self.styles),
                      style_blend=",".join(f"{w:g}" for _, w in self.styles))
        if sum(w for _, w in self.styles) <= 0:
            raise UserError("the style blend weights must add up to more than 0")
        weights = self.weights_edit.text().strip()
        if weights:
            values["vgg_weights"] = weights
        return values

    def start(self) -> bool:
        """Start the optimisation; False (and a message) if something is missing."""
        if self.running:
            return False
        try:
            overrides = self.repaint_overrides()
        except (UserError, ConfigError) as e:
            self._say(str(e))
            return False
        if not self.refresh_weights_status():
            self._say(self._weights_hint())
            return False
        self._remove_temp_run()
        self.run_dir = Path(tempfile.mkdtemp(prefix="ganstudio-style-"))
        self._temp_run = self.run_dir  # previews and metrics of this job; removed later
        settings = dict(total_steps=int(overrides["iterations"]), device=self.device_combo.currentText(),
                        precision="fp32", on_nan="stop", checkpoint_every_s=0.0,
                        sample_every_steps=int(self.preview_every.value()), n_samples=1,
                        keep_checkpoints=1)
        self.result = None
        self.save_button.setEnabled(False)
        self.compare.set_after(None)
        self._launch(self.spec, self.run_dir, None, overrides, settings)
        return True

    def start_fast_training(self) -> bool:
        if self.running or self.fast_spec is None:
            return False
        try:
            if not self.fast_style_path:
                raise UserError("choose the style picture the network should learn")
            data = self.fast_data.text().strip()
            if not data or not Path(data).expanduser().is_dir():
                raise UserError(f"content folder not found: {data or '(none)'}")
            run = self.fast_run.text().strip()
            if not run:
                raise UserError("choose a run folder for the network")
            overrides = self.fast_form.values()
            overrides["style"] = self.fast_style_path
            if self.weights_edit.text().strip():
                overrides["vgg_weights"] = self.weights_edit.text().strip()
        except (UserError, ConfigError) as e:
            self._say(str(e))
            return False
        if not self.refresh_weights_status():
            self._say(self._weights_hint())
            return False
        settings = dict(total_steps=int(self.fast_steps.value()),
                        device=self.device_combo.currentText(), on_nan="stop",
                        sample_every_s=5.0, checkpoint_every_s=120.0, n_samples=16)
        self.run_dir = Path(run).expanduser()
        self.compare.set_before(None)
        self._launch(self.fast_spec, self.run_dir, data, overrides, settings)
        return True

    def _launch(self, spec: Any, run_dir: Path, data: str | None, overrides: dict,
                settings: dict) -> None:
        self.chart.clear()
        self.last_values = {}
        worker = _StyleWorker(spec, run_dir, data_folder=data, overrides=overrides,
                              settings=settings, plugin_manager=self.pm)
        worker.metrics.connect(self._on_metrics)
        worker.samples.connect(self._on_samples)
        worker.warning.connect(lambda e: self._say(f"warning: {e.message}"))
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.result.connect(self._on_result)
        worker.done.connect(self._on_done)
        self.worker = worker
        self.session = TrainingSession(worker)
        self._set_running(True)
        self._say(f"Starting {spec.name}…")
        self.jobStarted.emit(spec.id)
        self.session.start()

    def stop(self) -> None:
        """Stop early; an optimisation keeps its best image so far."""
        if self.worker is not None and self.running:
            self.worker.stop()
            self._say("Stopping…")

    def shutdown(self, timeout_ms: int = 60_000) -> bool:
        """Stop any job and join its thread (the window calls this when it closes)."""
        self._cancel_download.set()
        ok = True
        if self.session is not None:
            if self.session.running:
                self.worker.stop()
            ok = self.session.join(timeout_ms)
        ok = self.tasks.wait_all(timeout_ms) and ok
        if ok:
            self._remove_temp_run()
        return ok

    def _remove_temp_run(self) -> None:
        """Delete the temporary run folder of the previous optimisation (not while running)."""
        temp = getattr(self, "_temp_run", None)
        if temp is not None and not self.running:
            shutil.rmtree(temp, ignore_errors=True)
            self._temp_run = None

    def _set_running(self, on: bool) -> None:
        self.start_button.setEnabled(not on)
        self.stop_button.setEnabled(on)
        if self.fast_spec is not None:
            self.fast_train_button.setEnabled(not on)
            self.fast_stop_button.setEnabled(on)

    # -- worker signals (GUI thread) ---------------------------------------------------------
    def _on_metrics(self, event: ev.Metrics, _memory: Any) -> None:
        self.last_values = dict(event.values)
        losses = {k: v for k, v in event.values.items() if k in LOSS_KEYS}
        self.chart.add_point(event.step, losses)
        extra = ""
        if "scale_px" in event.values:
            extra = f", {int(event.values['scale_px'])} px"
        self.status.setText(f"iteration {event.step}/{event.total_steps}{extra}, "
                            f"loss {event.values.get('loss', float('nan')):.4g}")

    def _on_samples(self, event: ev.Samples) -> None:
        self.compare.set_after(array_to_qimage(event.grid))

    def _on_result(self, array: np.ndarray) -> None:
        self.result = array
        self.compare.set_after(array_to_qimage(array))
        self.save_button.setEnabled(True)
        self.resultReady.emit()

    def _on_finished(self, event: ev.Finished) -> None:
        note = "" if event.reason == "completed" else " (stopped: best image so far)"
        self._say(f"{event.reason} after {event.step} iterations{note}")
        self._last_reason = event.reason

    def _on_failed(self, event: ev.Failed) -> None:
        self._say(event.message)
        self._last_reason = "failed"

    def _on_done(self) -> None:
        if self.session is not None:
            self.session.join(10_000)
        self._set_running(False)
        self.jobFinished.emit(getattr(self, "_last_reason", "failed"))
        self._last_reason = "failed"

    # -- results -----------------------------------------------------------------------------
    def result_qimage(self) -> QImage | None:
        return array_to_qimage(self.result) if self.result is not None else None

    def save_result(self, path: str | Path) -> Path:
        """Write the result image; raises UserError with the reason."""
        if self.result is None:
            raise UserError("no result to save yet")
        import torch
        tensor = torch.from_numpy(self.result).permute(2, 0, 1).float().div(255)
        written = self._tools().save_image(tensor, path)
        self._say(f"Saved {written}")
        return written

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the result", "stylized.png",
                                              "PNG (*.png);;JPEG (*.jpg)")
        if path:
            try:
                self.save_result(path)
            except UserError as e:
                self._say(str(e))

    def apply_network(self) -> bool:
        """Apply a trained fast-style network in a background task."""
        net_dir = self.apply_net.text().strip()
        inputs = [p.strip() for p in self.apply_inputs.text().split("|") if p.strip()]
        out = self.apply_out.text().strip()
        if not net_dir or not inputs or not out:
            self._say("choose a trained network, pictures and an output folder")
            return False
        size = int(self.apply_size.value()) or None
        device = self.device_combo.currentText()
        pm = self.pm

        def work():
            from ganstudio.cli.style import style_tools
            from ganstudio.core.devices import pick_device
            tools = style_tools(pm, FAST_MODEL)
            dev = pick_device(device, precision="fp32").device
            net, _cfg, _step = tools.load_style_net(net_dir, dev)
            written, ms = tools.apply_to_paths(net, inputs, out, size, as_folder=True)
            first = tools.load_image(written[0]) if written else None
            source = tools.expand_inputs(inputs)[0][0] if written else None
            return written, ms, first, source

        self.apply_button.setEnabled(False)
        self._say("Applying the network…")
        self.tasks.start(work, self._on_applied, self._on_apply_error)
        return True

    def _on_applied(self, result) -> None:
        written, ms, first, source = result
        self.apply_button.setEnabled(True)
        if source is not None:
            before = QImage(str(source))
            self.compare.set_before(None if before.isNull() else before)
        if first is not None:
            arr = (first[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
            self.result = np.ascontiguousarray(arr)
            self.compare.set_after(array_to_qimage(self.result))
            self.save_button.setEnabled(True)
        self._say(f"Stylized {len(written)} picture(s), {ms:.1f} ms per picture; "
                  f"written to {written[0].parent if written else ''}")
        self.applyFinished.emit(len(written))

    def _on_apply_error(self, message: str, _tb: str) -> None:
        self.apply_button.setEnabled(True)
        self._say(message)
        self.applyFinished.emit(-1)

    def _say(self, text: str) -> None:
        self.status.setText(text)
        self.message.emit(text)
