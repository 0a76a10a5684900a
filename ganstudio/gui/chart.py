"""The live metrics chart (pyqtgraph).

Points are appended to growing numpy buffers; a timer redraws at most a few
times a second with ``setData``. Each curve uses peak downsampling and
clip-to-view, which keeps a redraw of a million points in milliseconds.
Warnings from the engine (collapse, imbalance, NaN) become vertical markers at
their step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem,
                               QSpinBox, QVBoxLayout, QWidget)

from .metric_help import metric_tooltip
from .theme import CHART_COLOURS, SERIES_COLOURS, WARNING_COLOURS, current_theme

#: Values that describe the model's state rather than its losses: they go to the
#: status bar and are plotted only when the user ticks them.
STATUS_KEYS = {"resolution", "alpha", "phase", "phase_progress", "img_per_s"}
_SKIP_KEYS = {"step", "time"}


def moving_average(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over ``window`` points, NaN-aware, O(n) with cumulative sums."""
    if window <= 1 or y.size == 0:
        return y
    valid = np.isfinite(y)
    vals = np.where(valid, y, 0.0)
    csum = np.concatenate(([0.0], np.cumsum(vals)))
    ccount = np.concatenate(([0], np.cumsum(valid)))
    idx = np.arange(1, y.size + 1)
    lo = np.maximum(idx - window, 0)
    total = csum[idx] - csum[lo]
    count = ccount[idx] - ccount[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


@dataclass
class Series:
    name: str
    x: np.ndarray = field(default_factory=lambda: np.empty(1024))
    y: np.ndarray = field(default_factory=lambda: np.empty(1024))
    n: int = 0
    item: object = None
    visible: bool = True

    def append(self, xs: np.ndarray, ys: np.ndarray) -> None:
        k = len(xs)
        if self.n + k > self.x.size:
            cap = max(self.x.size * 2, self.n + k)
            self.x = np.resize(self.x, cap)
            self.y = np.resize(self.y, cap)
        self.x[self.n:self.n + k] = xs
        self.y[self.n:self.n + k] = ys
        self.n += k

    @property
    def xs(self) -> np.ndarray:
        return self.x[:self.n]

    @property
    def ys(self) -> np.ndarray:
        return self.y[:self.n]


class MetricsChart(QWidget):
    """Loss curves with metric toggles, smoothing, log scale and follow-newest."""

    redrawn = Signal()

    def __init__(self, parent: QWidget | None = None, *, redraw_ms: int = 250):
        super().__init__(parent)
        theme = CHART_COLOURS[current_theme()]
        self.plot = pg.PlotWidget(background=theme["background"])
        self.plot.setObjectName("metricsPlot")
        pi = self.plot.getPlotItem()
        pi.showGrid(x=True, y=True, alpha=0.15)
        pi.setLabel("bottom", "step")
        pi.setDownsampling(auto=True, mode="peak")
        pi.setClipToView(True)
        # No legend on the plot: the metric list beside it names each colour and,
        # with a dozen metrics, a legend would cover the curves.
        self.series: dict[str, Series] = {}
        self.markers: list[tuple[int, str, str]] = []
        self._marker_items: list[pg.InfiniteLine] = []
        self._dirty = False
        self.redraw_count = 0
        self.last_redraw_s = 0.0

        self.metric_list = QListWidget()
        self.metric_list.setObjectName("metricList")
        self.metric_list.setMaximumWidth(170)
        self.metric_list.setToolTip("Tick the metrics to plot")
        self.metric_list.itemChanged.connect(self._on_item_changed)
        self.smoothing = QSpinBox()
        self.smoothing.setRange(1, 10_000)
        self.smoothing.setValue(10)   # about a second of 100 ms points: readable at once
        self.smoothing.setToolTip("Moving average over this many logged points (1 = raw)")
        self.smoothing.valueChanged.connect(self._mark_dirty)
        self.log_scale = QCheckBox("Log scale")
        self.log_scale.toggled.connect(lambda on: pi.setLogMode(y=on))
        self.follow = QCheckBox("Follow newest")
        self.follow.setChecked(True)
        self.follow.setToolTip("Keep the newest step in view; zooming or panning turns it off")
        self.follow.toggled.connect(self._on_follow)
        pi.getViewBox().sigRangeChangedManually.connect(lambda *_: self.follow.setChecked(False))

        side = QVBoxLayout()
        side.addWidget(QLabel("Metrics"))
        side.addWidget(self.metric_list, 1)
        row = QHBoxLayout()
        row.addWidget(QLabel("Smoothing"))
        row.addWidget(self.smoothing)
        side.addLayout(row)
        side.addWidget(self.log_scale)
        side.addWidget(self.follow)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot, 1)
        layout.addLayout(side)

        self.timer = QTimer(self)
        self.timer.setInterval(redraw_ms)
        self.timer.timeout.connect(self.redraw_if_dirty)
        self.timer.start()

    # -- data in -----------------------------------------------------------------------------
    def add_point(self, step: int, values: dict) -> None:
        self.add_rows([{"step": step, **values}])

    def add_rows(self, rows: Iterable[dict]) -> None:
        """Append logged rows ({"step": int, name: number or None, ...})."""
        columns: dict[str, tuple[list, list]] = {}
        for row in rows:
            step = row.get("step")
            if not isinstance(step, int):
                continue
            for name, value in row.items():
                if name in _SKIP_KEYS or isinstance(value, bool):
                    continue
                if value is None:
                    value = math.nan
                if not isinstance(value, (int, float)):
                    continue
                xs, ys = columns.setdefault(name, ([], []))
                xs.append(step)
                ys.append(float(value))
        # Losses first: a run folder's rows may list their keys alphabetically, and the
        # first series decide which ones are shown by default (see default_visible).
        ordered = sorted(columns, key=lambda n: not n.startswith("loss"))
        for name in ordered:
            xs, ys = columns[name]
            self.series_for(name).append(np.asarray(xs, float), np.asarray(ys, float))
        if columns:
            self._dirty = True

    def set_series(self, name: str, x: np.ndarray, y: np.ndarray) -> None:
        """Replace one curve's data (bulk loading, benchmarks)."""
        s = self.series_for(name)
        s.x, s.y, s.n = np.asarray(x, float).copy(), np.asarray(y, float).copy(), len(x)
        self._dirty = True

    def series_for(self, name: str) -> Series:
        s = self.series.get(name)
        if s is not None:
            return s
        colour = SERIES_COLOURS[len(self.series) % len(SERIES_COLOURS)]
        s = Series(name, visible=self.default_visible(name))
        item = pg.PlotDataItem(name=name, pen=pg.mkPen(colour, width=1.6))
        item.setDownsampling(auto=True, method="peak")
        item.setClipToView(True)
        s.item = item
        self.series[name] = s
        if s.visible:
            self.plot.addItem(item)
        entry = QListWidgetItem(name)
        entry.setToolTip(metric_tooltip(name))
        entry.setFlags(entry.flags() | Qt.ItemIsUserCheckable)
        entry.setCheckState(Qt.Checked if s.visible else Qt.Unchecked)
        entry.setForeground(pg.mkColor(colour))
        self.metric_list.blockSignals(True)
        self.metric_list.addItem(entry)
        self.metric_list.blockSignals(False)
        return s

    def default_visible(self, name: str) -> bool:
        """Losses are plotted at first; diagnostics and status values wait to be ticked
        (a model may report a dozen numbers; all at once is unreadable)."""
        if name in STATUS_KEYS:
            return False
        if self.series and any(n.startswith("loss") for n in self.series) or name.startswith(
                "loss"):
            return name.startswith("loss")
        return True

    def add_marker(self, step: int, kind: str, message: str = "") -> None:
        """A vertical line at ``step`` for an engine warning (collapse, imbalance, nan...)."""
        colour = WARNING_COLOURS.get(kind, "#ffa726")
        # stagger the labels so warnings at the same step stay readable
        position = 0.95 - 0.06 * (len(self.markers) % 5)
        line = pg.InfiniteLine(pos=step, angle=90, movable=False,
                               pen=pg.mkPen(colour, width=1.5, style=Qt.DashLine),
                               label=kind, labelOpts={"position": position, "color": colour})
        line.setToolTip(message)
        self.plot.addItem(line)
        self.markers.append((int(step), kind, message))
        self._marker_items.append(line)

    def clear(self) -> None:
        for s in self.series.values():
            self.plot.removeItem(s.item)
        for line in self._marker_items:
            self.plot.removeItem(line)
        self.series.clear()
        self.markers.clear()
        self._marker_items.clear()
        self.metric_list.clear()
        self._dirty = True

    # -- toggles -----------------------------------------------------------------------------
    def set_metric_visible(self, name: str, visible: bool) -> None:
        for i in range(self.metric_list.count()):
            item = self.metric_list.item(i)
            if item.text() == name:
                item.setCheckState(Qt.Checked if visible else Qt.Unchecked)

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        s = self.series.get(item.text())
        if s is None:
            return
        visible = item.checkState() == Qt.Checked
        if visible == s.visible:
            return
        s.visible = visible
        if visible:
            self.plot.addItem(s.item)
        else:
            self.plot.removeItem(s.item)
        self._dirty = True

    def _on_follow(self, on: bool) -> None:
        if on:
            self.plot.getPlotItem().enableAutoRange()
            self._dirty = True

    def _mark_dirty(self, *_args) -> None:
        self._dirty = True

    # -- drawing -----------------------------------------------------------------------------
    def displayed(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """What the curve shows: the raw points after smoothing."""
        s = self.series[name]
        return s.xs, moving_average(s.ys, self.smoothing.value())

    def redraw_if_dirty(self) -> None:
        if self._dirty:
            self.redraw()

    def redraw(self) -> None:
        import time
        t0 = time.perf_counter()
        self._dirty = False
        for name, s in self.series.items():
            if not s.visible:
                continue
            x, y = self.displayed(name)
            s.item.setData(x, y, connect="finite")
        if self.follow.isChecked():
            self.plot.getPlotItem().enableAutoRange()
        self.redraw_count += 1
        self.last_redraw_s = time.perf_counter() - t0
        self.redrawn.emit()

    def apply_theme(self, name: str) -> None:
        colours = CHART_COLOURS.get(name, CHART_COLOURS["dark"])
        self.plot.setBackground(colours["background"])
        for axis in ("left", "bottom"):
            ax = self.plot.getPlotItem().getAxis(axis)
            ax.setPen(colours["foreground"])
            ax.setTextPen(colours["foreground"])
