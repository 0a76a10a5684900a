"""The export dialog's output options: size (x1-x8 or pixels, nearest or smooth), and for
a time-lapse the frame rate and length. The writing itself is ``ganstudio.core.media``."""
from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout,
                               QSpinBox, QWidget)

from ganstudio.core.media import MAX_SIDE, OutputSize

SIZES = (("×1 (as trained)", 1), ("×2", 2), ("×4", 4), ("×8", 8), ("Pixels…", 0))


class OutputOptions(QWidget):
    """Rows for the export dialog; :meth:`values` gives what the export functions take."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.scale = QComboBox()
        self.scale.setObjectName("exportScale")
        for text, factor in SIZES:
            self.scale.addItem(text, factor)
        self.scale.setCurrentIndex(2)     # x4: a 32 px sample becomes 128 px
        self.pixels = QSpinBox()
        self.pixels.setObjectName("exportPixels")
        self.pixels.setRange(16, MAX_SIDE)
        self.pixels.setValue(1024)
        self.pixels.setSuffix(" px")
        self.pixels.setToolTip("The longest side of the output, in pixels")
        self.smooth = QCheckBox("Smooth")
        self.smooth.setObjectName("exportSmooth")
        self.smooth.setToolTip("Off: every pixel becomes a sharp block (nearest neighbour).\n"
                               "On: scaled smoothly (Lanczos), softer edges.")
        row = QHBoxLayout()
        row.addWidget(self.scale)
        row.addWidget(self.pixels)
        row.addWidget(self.smooth)
        row.addStretch(1)
        form.addRow("Size", row)
        self.fps = QDoubleSpinBox()
        self.fps.setObjectName("exportFps")
        self.fps.setRange(1, 60)
        self.fps.setDecimals(0)
        self.fps.setValue(12)
        self.fps.setSuffix(" fps")
        self.seconds = QDoubleSpinBox()
        self.seconds.setObjectName("exportSeconds")
        self.seconds.setRange(0, 600)
        self.seconds.setDecimals(1)
        self.seconds.setValue(10)
        self.seconds.setSuffix(" s")
        self.seconds.setSpecialValueText("one frame per grid")
        self.seconds.setToolTip("How long the video lasts; the run's grids are spread evenly "
                                "over it (0: one frame per saved grid)")
        form.addRow("Frame rate", self.fps)
        form.addRow("Length", self.seconds)
        self._form = form
        self.scale.currentIndexChanged.connect(lambda _i: self._update())
        self.set_kind("grid")

    def _update(self) -> None:
        self.pixels.setVisible(self.scale.currentData() == 0)

    def set_kind(self, kind: str) -> None:
        """Show the rows that apply to ``kind`` (grid, samples, timelapse, generator)."""
        sized = kind in ("grid", "samples", "timelapse", "sample")
        video = kind == "timelapse"
        for widget, show in ((self.scale, sized), (self.smooth, sized), (self.fps, video),
                             (self.seconds, video)):
            widget.setVisible(show)
            label = self._form.labelForField(widget)
            if label is not None:
                label.setVisible(show)
        self._size_label().setVisible(sized)
        self._update()
        if not sized:
            self.pixels.setVisible(False)

    def _size_label(self) -> QWidget:
        return self._form.itemAt(0, QFormLayout.LabelRole).widget()

    def output_size(self) -> OutputSize:
        factor = int(self.scale.currentData())
        return OutputSize(scale=factor or 1, pixels=int(self.pixels.value()) if not factor
                          else None, smooth=self.smooth.isChecked())

    def values(self) -> dict[str, Any]:
        seconds = float(self.seconds.value())
        return {"size": self.output_size(), "fps": float(self.fps.value()),
                "seconds": seconds if seconds > 0 else None}
