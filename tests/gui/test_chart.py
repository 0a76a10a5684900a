"""The metrics chart: real values in, smoothing, toggles, log scale, markers, 1e6 points."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest

from ganstudio.gui.chart import MetricsChart, moving_average


@pytest.fixture
def chart(qtbot):
    c = MetricsChart(redraw_ms=50)
    qtbot.addWidget(c)
    c.show()
    return c


def test_rows_become_curves(chart):
    chart.add_rows([{"step": 1, "time": 0.1, "loss_d": 1.5, "loss_g": 0.7, "resolution": 8},
                    {"step": 2, "time": 0.2, "loss_d": None, "loss_g": 0.9, "resolution": 8},
                    {"step": 3, "time": 0.3, "loss_d": 1.1, "loss_g": 0.8, "resolution": 16}])
    chart.redraw()
    assert set(chart.series) == {"loss_d", "loss_g", "resolution"}
    assert chart.smoothing.value() == 10          # smoothed by default: readable at once
    x, y = chart.series["loss_g"].item.getOriginalDataset()
    assert list(x) == [1, 2, 3] and list(y) == pytest.approx([0.7, 0.8, 0.8])
    chart.smoothing.setValue(1)                   # 1 = the raw points
    chart.redraw()
    x, y = chart.series["loss_g"].item.getOriginalDataset()
    assert list(x) == [1, 2, 3] and list(y) == pytest.approx([0.7, 0.9, 0.8])
    assert math.isnan(chart.series["loss_d"].ys[1])
    # status values are listed but not plotted until ticked
    assert not chart.series["resolution"].visible
    assert chart.series["resolution"].item not in chart.plot.getPlotItem().items
    chart.set_metric_visible("resolution", True)
    assert chart.series["resolution"].item in chart.plot.getPlotItem().items
    chart.set_metric_visible("loss_d", False)
    assert chart.series["loss_d"].item not in chart.plot.getPlotItem().items


def test_smoothing_is_a_trailing_mean(chart):
    ys = [1.0, 3.0, 5.0, float("nan"), 9.0]
    assert list(moving_average(np.array(ys), 2)) == pytest.approx([1.0, 2.0, 4.0, 5.0, 9.0])
    chart.add_rows([{"step": i, "loss": v} for i, v in enumerate(ys)])
    chart.smoothing.setValue(3)
    chart.redraw()
    _x, y = chart.series["loss"].item.getOriginalDataset()
    assert list(y) == pytest.approx([1.0, 2.0, 3.0, 4.0, 7.0])


def test_log_scale_follow_and_markers(chart, qtbot):
    chart.add_rows([{"step": i, "loss": 10.0 ** -i} for i in range(1, 6)])
    chart.log_scale.setChecked(True)
    assert chart.plot.getPlotItem().ctrl.logYCheck.isChecked()
    chart.add_marker(3, "collapse", "samples look alike")
    chart.add_marker(4, "nan", "losses became NaN")
    assert [(s, k) for s, k, _ in chart.markers] == [(3, "collapse"), (4, "nan")]
    assert chart._marker_items[1].value() == 4
    # manual zoom turns off follow-newest; ticking it again re-enables auto range
    chart.plot.getPlotItem().getViewBox().sigRangeChangedManually.emit([True, True])
    assert not chart.follow.isChecked()
    chart.follow.setChecked(True)
    with qtbot.waitSignal(chart.redrawn, timeout=2000):
        pass
    assert chart.plot.getPlotItem().getViewBox().autoRangeEnabled()[0]


def test_a_million_points_redraw_quickly(chart):
    n = 1_000_000
    x = np.arange(n, dtype=float)
    y = np.sin(x / 5000.0) + np.random.default_rng(0).normal(0, 0.1, n)
    chart.set_series("loss_d", x, y)
    chart.resize(900, 500)
    chart.redraw()  # first draw builds caches
    t0 = time.perf_counter()
    for _ in range(3):
        chart.add_rows([{"step": n + _, "loss_d": 0.5}])
        chart.redraw()
        chart.plot.grab()  # actually paint
    per_frame = (time.perf_counter() - t0) / 3
    shown_x, _ = chart.series["loss_d"].item.getData()
    assert chart.series["loss_d"].n == n + 3
    assert len(shown_x) < n / 50  # peak downsampling to the screen's width
    assert per_frame < 1.0, f"{per_frame:.3f} s per redraw of 1e6 points"


def test_losses_are_shown_first_even_from_alphabetical_rows(chart):
    """Rows read back from a run folder list keys alphabetically: the diagnostics before
    the losses must still wait to be ticked."""
    chart.add_rows([{"d_acc_fake": 0.5, "d_real": 0.7, "loss_d": 1.2, "loss_g": 0.8,
                     "step": 1, "time": 0.1}])
    shown = {n for n, s in chart.series.items() if s.visible}
    assert shown == {"loss_d", "loss_g"}
    assert [chart.metric_list.item(i).text() for i in range(2)] == ["loss_d", "loss_g"]
