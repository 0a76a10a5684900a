"""The VGG-19 weights part of the Style transfer tab: which file is used, a labelled
Browse… and Download… with progress, and the studio's wording when none is found.
Loaded only by the studio (imports Qt)."""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QFileDialog, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
                               QProgressBar, QPushButton, QVBoxLayout, QWidget)

from . import vgg
from .panel_widgets import path_row

WEIGHTS_PATTERN = "Weights (*.pth *.pt *.safetensors);;All files (*)"


def studio_words(status: vgg.WeightsStatus) -> str:
    """What the tab says about ``status``, naming its own buttons (never a command-line flag)."""
    if status.found:
        return f"Using {status.path}"
    if status.downloadable:
        return (f"VGG-19 weights are needed: press “Download…” to fetch {vgg.VGG19_FILE} "
                f"({vgg.VGG19_SIZE_MB} MB, once), or “Browse…” to choose a VGG-19 weights "
                "file you already have.")
    return f"{status.problem}. Choose another file with “Browse…”, or clear the field."


class WeightsBox(QGroupBox):
    """Shows and chooses the VGG-19 weights; downloads them in a studio background task."""

    changed = Signal(bool)        # weights found now
    message = Signal(str)         # something to tell the user (download started / done / failed)

    def __init__(self, studio: Any, parent: QWidget | None = None):
        super().__init__("VGG-19 weights", parent)
        self.studio = studio
        self._download: Any = None
        self.edit = QLineEdit()
        self.edit.setPlaceholderText("torchvision's ImageNet file in the torch cache")
        self.edit.setToolTip("A VGG-19 weights file with torchvision's key names "
                             "(setting vgg_weights); empty: torchvision's own cached file")
        self.edit.editingFinished.connect(self.refresh)
        self.download_button = QPushButton("Download…")
        self.download_button.setToolTip(f"Fetch {vgg.VGG19_FILE} ({vgg.VGG19_SIZE_MB} MB) "
                                        "from download.pytorch.org into the torch cache")
        self.download_button.clicked.connect(self.start_download)
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel_download)
        row = path_row(self.edit, ("Browse…", "Choose a VGG-19 weights file", self.choose_file))
        row.layout().addWidget(self.download_button)
        brow = QHBoxLayout()
        brow.addWidget(self.bar, 1)
        brow.addWidget(self.cancel_button)
        lay = QVBoxLayout(self)
        lay.addWidget(row)
        lay.addLayout(brow)
        lay.addWidget(self.status_label)
        self.status = vgg.WeightsStatus(None)
        self.refresh()

    # -- state -------------------------------------------------------------------------------
    def explicit(self) -> str:
        return self.edit.text().strip()

    def refresh(self) -> bool:
        """Look for the weights again; True when found."""
        self.status = vgg.weights_status(self.explicit() or None)
        self.status_label.setText(studio_words(self.status))
        self.download_button.setEnabled(self.status.downloadable and not self.downloading)
        self.changed.emit(self.status.found)
        return self.status.found

    def needed_text(self) -> str:
        """The sentence shown next to Start / Train when the weights are missing."""
        return studio_words(self.status)

    # -- actions -----------------------------------------------------------------------------
    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose VGG-19 weights", self.explicit(),
                                              WEIGHTS_PATTERN)
        if path:
            self.set_file(path)

    def set_file(self, path: str) -> bool:
        self.edit.setText(str(path))
        return self.refresh()

    @property
    def downloading(self) -> bool:
        return self._download is not None and self._download.running

    def start_download(self) -> None:
        """Download torchvision's VGG-19 file in a background task, with a progress bar."""
        if self.downloading:
            return
        self.bar.setRange(0, 0)
        self.bar.setVisible(True)
        self.cancel_button.setVisible(True)
        self.download_button.setEnabled(False)
        self.message.emit(f"Downloading {vgg.VGG19_FILE} ({vgg.VGG19_SIZE_MB} MB)…")

        def work(ctx) -> str:
            def progress(done: int, total: int) -> None:
                ctx.progress(done / total if total else 0.0,
                             f"{done // 2**20} of {total // 2**20} MB" if total else "")
            try:
                return f"VGG-19 weights saved to {vgg.download_vgg_weights(progress=progress, should_cancel=ctx.cancelled)}"
            except vgg.DownloadFailed as e:
                return (f"Could not download {vgg.VGG19_FILE} ({e.reason}). Download it "
                        f"elsewhere and put it in {e.folder}, or choose a weights file with "
                        "“Browse…”.")

        self._download = self.studio.run_task(work, on_result=self._done, on_error=self._failed,
                                              on_progress=self._progress,
                                              on_finished=self._end)

    def cancel_download(self) -> None:
        if self._download is not None:
            self._download.cancel()

    def _progress(self, fraction: float, text: str) -> None:
        if fraction > 0:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(fraction * 1000))
        self.bar.setFormat(f"%p% · {text}" if text else "%p%")

    def _done(self, text: str) -> None:
        self.message.emit(text)

    def _failed(self, message: str, _tb: str) -> None:
        self.message.emit(message)

    def _end(self) -> None:
        self._download = None
        self.bar.setVisible(False)
        self.cancel_button.setVisible(False)
        self.refresh()

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        handle = self._download
        if handle is None:
            return True
        handle.cancel()
        return handle.wait(timeout_ms)
