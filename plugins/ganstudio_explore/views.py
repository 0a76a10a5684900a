"""Small pieces the Explore tab's views share: images on labels, one-job runners."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QLabel, QSizePolicy


def to_array(images: Any) -> np.ndarray:
    """(1, C, H, W) / (C, H, W) tensors in [-1, 1], or a uint8 array -> (H, W, 3) uint8."""
    if isinstance(images, np.ndarray):
        arr = images
    else:
        from ganstudio.core.images import to_uint8
        x = images[0] if images.dim() == 4 else images
        arr = to_uint8(x).permute(1, 2, 0).cpu().numpy()
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr)


def to_pixmap(images: Any, size: int | None = None) -> QPixmap:
    arr = to_array(images)
    h, w = arr.shape[:2]
    img = QImage(arr.data, w, h, arr.strides[0], QImage.Format_RGB888).copy()
    pm = QPixmap.fromImage(img)
    if size:
        mode = Qt.FastTransformation if size >= 2 * max(w, h) else Qt.SmoothTransformation
        pm = pm.scaled(size, size, Qt.KeepAspectRatio, mode)
    return pm


class ImageView(QLabel):
    """A fixed-size picture (nearest-neighbour upscaling keeps tiny samples crisp)."""

    def __init__(self, size: int = 96, parent=None):
        super().__init__(parent)
        self.side = size
        self.setFixedSize(size, size)
        self.setAlignment(Qt.AlignCenter)
        self.setSizePolicy(QSizePolicy.Fixed, QSizePolicy.Fixed)
        self.setStyleSheet("background: #222; border: 1px solid #444;")
        self.array: np.ndarray | None = None

    def show_image(self, images: Any) -> None:
        self.array = to_array(images)
        self.setPixmap(to_pixmap(self.array, self.side))

    def clear_image(self) -> None:
        self.array = None
        self.clear()


class OneJob:
    """At most one background job of a kind: a new request while one runs is
    remembered and started when it ends (the newest request wins)."""

    def __init__(self, start: Callable[[], Any]):
        self._start = start
        self.handle = None
        self._again = False

    @property
    def running(self) -> bool:
        return self.handle is not None and self.handle.running

    def request(self) -> None:
        if self.running:
            self._again = True
            return
        self._again = False
        self.handle = self._start()

    def finished(self) -> None:
        if self._again:
            self._again = False
            self.handle = self._start()

    def cancel(self) -> None:
        self._again = False
        if self.handle is not None:
            self.handle.cancel()
