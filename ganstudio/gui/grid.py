"""The live sample grid, its time-lapse slider and the full-size view of one sample.

Grids arrive as uint8 (H, W, C) arrays and become QImages here, in the GUI
thread. Saved grids (the run's samples/ folder) are read as the slider moves.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PySide6.QtCore import QPoint, QRect, Qt, Signal
from PySide6.QtGui import QImage, QPainter, QPixmap
from PySide6.QtWidgets import (QCheckBox, QDialog, QHBoxLayout, QLabel, QSizePolicy, QSlider,
                               QVBoxLayout, QWidget)

GRID_PADDING = 2  # the engine's make_grid padding


def array_to_qimage(array: np.ndarray) -> QImage:
    """(H, W, C) or (H, W) uint8 -> a QImage that owns its pixels."""
    arr = np.ascontiguousarray(array)
    if arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = np.ascontiguousarray(arr[:, :, 0])
    if arr.ndim == 2:
        h, w = arr.shape
        img = QImage(arr.data, w, h, arr.strides[0], QImage.Format_Grayscale8)
    elif arr.ndim == 3 and arr.shape[2] == 3:
        h, w = arr.shape[:2]
        img = QImage(arr.data, w, h, arr.strides[0], QImage.Format_RGB888)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        h, w = arr.shape[:2]
        img = QImage(arr.data, w, h, arr.strides[0], QImage.Format_RGBA8888)
    else:
        raise ValueError(f"expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {arr.shape}")
    return img.copy()  # detach from the numpy buffer


def qimage_to_array(image: QImage) -> np.ndarray:
    """QImage -> (H, W, 3) uint8 (for exports and tests)."""
    img = image.convertToFormat(QImage.Format_RGB888)
    w, h = img.width(), img.height()
    buf = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h)
    return buf.reshape(h, img.bytesPerLine())[:, :w * 3].reshape(h, w, 3).copy()


def _is_power_of_two(n: int) -> bool:
    return n >= 2 and (n & (n - 1)) == 0


def grid_layout(width: int, height: int, pad: int = GRID_PADDING) -> tuple[int, int, int, int]:
    """Guess (columns, rows, cell width, cell height) of a make_grid image.

    Grids are ``ncol * (cell + pad) + pad`` wide with square power-of-two cells;
    the largest such cell that fits wins. A picture that is no grid is one cell.
    """
    best = None
    for ncol in range(1, 65):
        inner = width - pad
        if inner <= 0 or inner % ncol:
            continue
        cell = inner // ncol - pad
        if cell < 2 or not _is_power_of_two(cell):
            continue
        if (height - pad) % (cell + pad):
            continue
        nrow = (height - pad) // (cell + pad)
        if nrow >= 1 and (best is None or cell > best[2]):
            best = (ncol, nrow, cell, cell)
    return best or (1, 1, width, height)


def cell_rect(index: int, width: int, height: int) -> QRect:
    ncol, nrow, cw, ch = grid_layout(width, height)
    if (ncol, nrow) == (1, 1) and cw == width:
        return QRect(0, 0, width, height)
    r, c = divmod(index, ncol)
    return QRect(GRID_PADDING + c * (cw + GRID_PADDING), GRID_PADDING + r * (ch + GRID_PADDING),
                 cw, ch)


class GridView(QWidget):
    """Paints one grid image scaled to fit (nearest neighbour: pixels stay crisp)."""

    cellClicked = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.image: QImage | None = None
        self.setMinimumSize(160, 160)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setCursor(Qt.PointingHandCursor)
        self.setToolTip("Click a sample to see it full size")

    def set_image(self, image: QImage | None) -> None:
        self.image = image
        self.update()

    def target_rect(self) -> QRect:
        if self.image is None or self.image.isNull():
            return QRect()
        iw, ih = self.image.width(), self.image.height()
        scale = min(self.width() / iw, self.height() / ih)
        if scale >= 2:
            scale = math.floor(scale)  # integer zoom keeps every pixel the same size
        w, h = max(1, int(iw * scale)), max(1, int(ih * scale))
        return QRect((self.width() - w) // 2, (self.height() - h) // 2, w, h)

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt naming
        p = QPainter(self)
        if self.image is None or self.image.isNull():
            p.setPen(self.palette().placeholderText().color())
            p.drawText(self.rect().adjusted(8, 0, -8, 0), Qt.AlignCenter | Qt.TextWordWrap,
                       "Samples appear here once training starts")
            return
        p.setRenderHint(QPainter.SmoothPixmapTransform, False)
        p.drawImage(self.target_rect(), self.image)

    def index_at(self, pos: QPoint) -> int | None:
        """Which sample of the grid is under ``pos`` (widget coordinates), if any."""
        if self.image is None:
            return None
        t = self.target_rect()
        if not t.contains(pos):
            return None
        x = (pos.x() - t.x()) * self.image.width() / t.width()
        y = (pos.y() - t.y()) * self.image.height() / t.height()
        ncol, nrow, cw, ch = grid_layout(self.image.width(), self.image.height())
        c = int((x - GRID_PADDING) // (cw + GRID_PADDING))
        r = int((y - GRID_PADDING) // (ch + GRID_PADDING))
        if not (0 <= c < ncol and 0 <= r < nrow):
            return None
        return r * ncol + c

    def mousePressEvent(self, event) -> None:  # noqa: N802
        idx = self.index_at(event.position().toPoint())
        if idx is not None:
            self.cellClicked.emit(idx)


class EnlargeDialog(QDialog):
    """One sample at full size (scaled up with nearest neighbour so pixels show), with a
    Save button that writes it at the size chosen."""

    saved = Signal(str)

    def __init__(self, image: QImage, title: str, parent: QWidget | None = None):
        from PySide6.QtWidgets import QPushButton
        from .export_options import OutputOptions
        super().__init__(parent)
        self.setWindowTitle(title)
        self.image = image
        factor = max(1, 384 // max(1, max(image.width(), image.height())))
        self.label = QLabel()
        self.label.setAlignment(Qt.AlignCenter)
        self.label.setPixmap(QPixmap.fromImage(image.scaled(
            image.width() * factor, image.height() * factor, Qt.KeepAspectRatio,
            Qt.FastTransformation)))
        info = QLabel(f"{image.width()} × {image.height()} px, shown ×{factor}")
        self.output = OutputOptions()
        self.output.set_kind("sample")
        self.save_button = QPushButton("Save…")
        self.save_button.setObjectName("saveSample")
        self.save_button.clicked.connect(self._ask_save)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.output, 1)
        row.addWidget(self.save_button)
        lay = QVBoxLayout(self)
        lay.addWidget(self.label)
        lay.addWidget(info)
        lay.addLayout(row)
        lay.addWidget(self.message)

    def save_to(self, path: str | Path) -> Path | None:
        """Write the sample as PNG at the chosen size; says where (or why not)."""
        from ganstudio.core.errors import UserError
        from ganstudio.core.media import write_png
        try:
            written = write_png(qimage_to_array(self.image), path, self.output.output_size())
        except UserError as e:
            self.message.setText(f"<span style='color:#e5484d'>Not saved: {e}</span>")
            return None
        self.message.setText(f"Saved to {written}")
        self.saved.emit(str(written))
        return written

    def _ask_save(self) -> None:
        from PySide6.QtWidgets import QFileDialog
        name = self.windowTitle().lower().replace(" ", "-") + ".png"
        path, _ = QFileDialog.getSaveFileName(self, "Save the sample",
                                              str(Path.home() / name), "PNG image (*.png)")
        if path:
            self.save_to(path)


class SamplePanel(QWidget):
    """The live grid, a time-lapse slider over the run's saved grids, click to enlarge."""

    frameShown = Signal(int)  # the step of the grid on screen

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.view = GridView()
        self.view.cellClicked.connect(self.enlarge)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setObjectName("timelapseSlider")
        self.slider.setRange(0, 0)
        self.slider.setEnabled(False)
        self.slider.setToolTip("Time-lapse: every grid saved in the run")
        self.slider.valueChanged.connect(self._on_slider)
        self.live = QCheckBox("Live")
        self.live.setChecked(True)
        self.live.setToolTip("Show each new grid as it arrives")
        self.live.toggled.connect(self._on_live)
        self.caption = QLabel("no samples yet")
        self.caption.setObjectName("gridCaption")
        row = QHBoxLayout()
        row.addWidget(self.caption)
        row.addWidget(self.slider, 1)
        row.addWidget(self.live)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.view, 1)
        lay.addLayout(row)
        self.frames: list[tuple[int, str | None]] = []  # (step, png path)
        self.current_step: int | None = None
        self.current_array: np.ndarray | None = None
        self.dialogs: list[EnlargeDialog] = []
        self._updating = False

    def clear(self) -> None:
        self.frames = []
        self.current_step = None
        self.current_array = None
        self.view.set_image(None)
        self._set_slider()
        self.caption.setText("no samples yet")

    def set_frames(self, frames: list[tuple[int, str | Path]]) -> None:
        """The run's saved grids (oldest first); shows the newest."""
        self.frames = [(int(s), str(p)) for s, p in frames]
        self._set_slider()
        if self.frames:
            self.show_frame(len(self.frames) - 1)

    def update_frames(self, frames: list[tuple[int, str | Path]]) -> None:
        """The run's saved grids changed (a watched run): the slider follows the newest
        when Live is on and keeps its place otherwise; the grid on screen stays."""
        self.frames = [(int(s), str(p)) for s, p in frames]
        self._set_slider(keep=not self.live.isChecked())

    def merge_frames(self, frames: list[tuple[int, str | Path]]) -> None:
        """Add saved grids of earlier steps (a resumed run's history) to those shown."""
        seen = {s for s, _ in self.frames}
        merged = [(int(s), str(p)) for s, p in frames if int(s) not in seen] + self.frames
        merged.sort(key=lambda f: f[0])
        self.frames = merged
        self._set_slider()

    def frame_steps(self) -> list[int]:
        return [s for s, _ in self.frames]

    def add_grid(self, step: int, grid: np.ndarray, path: str | None = None) -> None:
        """A new grid from training or a watched run."""
        if self.frames and self.frames[-1][0] == step:
            self.frames[-1] = (step, path)
        else:
            self.frames.append((step, path))
        at_end = self.live.isChecked()
        self._set_slider(keep=not at_end)
        if at_end:
            self._show(step, grid)

    def _set_slider(self, keep: bool = False) -> None:
        self._updating = True
        value = self.slider.value()
        self.slider.setRange(0, max(0, len(self.frames) - 1))
        self.slider.setEnabled(len(self.frames) > 1)
        self.slider.setValue(value if keep else max(0, len(self.frames) - 1))
        self._updating = False

    def _show(self, step: int, grid: np.ndarray | QImage) -> None:
        if isinstance(grid, QImage):
            image = grid
            self.current_array = None
        else:
            image = array_to_qimage(grid)
            self.current_array = grid
        self.view.set_image(image)
        self.current_step = step
        n = len(self.frames)
        pos = self.slider.value() + 1 if n else 0
        self.caption.setText(f"step {step:,}  ({pos}/{n})")
        self.frameShown.emit(step)

    def show_frame(self, index: int) -> bool:
        """Show saved grid ``index`` (read from its PNG)."""
        if not (0 <= index < len(self.frames)):
            return False
        step, path = self.frames[index]
        if not path:
            return False
        image = QImage(path)
        if image.isNull():
            self.caption.setText(f"step {step:,}: cannot read {Path(path).name}")
            return False
        if self.slider.value() != index:
            self._updating = True
            self.slider.setValue(index)
            self._updating = False
        self._show(step, image)
        return True

    def _on_slider(self, value: int) -> None:
        if self._updating:
            return
        if value < len(self.frames) - 1 and self.live.isChecked():
            self.live.blockSignals(True)
            self.live.setChecked(False)
            self.live.blockSignals(False)
        self.show_frame(value)

    def _on_live(self, on: bool) -> None:
        if on and self.frames:
            self.show_frame(len(self.frames) - 1)

    def current_image(self) -> QImage | None:
        return self.view.image

    def sample_image(self, index: int) -> QImage | None:
        img = self.view.image
        if img is None:
            return None
        rect = cell_rect(index, img.width(), img.height())
        return img.copy(rect)

    def enlarge(self, index: int) -> EnlargeDialog | None:
        image = self.sample_image(index)
        if image is None:
            return None
        dlg = EnlargeDialog(image, f"Sample {index + 1} at step {self.current_step}", self)
        dlg.setAttribute(Qt.WA_DeleteOnClose, False)
        self.dialogs = [d for d in self.dialogs if d.isVisible()] + [dlg]
        dlg.show()
        return dlg
