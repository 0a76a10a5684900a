"""A new user's first hour in the studio: every control reachable on a laptop screen,
the run's measured time before Start with faster one-click choices, settings kept
across launches, the curves explained, non-image files and greyscale folders said."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, QRect
from PySide6.QtWidgets import QAbstractScrollArea, QApplication

from ganstudio.core.units import format_duration


def _scroll_ancestor(widget):
    p = widget.parentWidget()
    while p is not None:
        if isinstance(p, QAbstractScrollArea) and p.viewport().isAncestorOf(widget):
            return p
        p = p.parentWidget()
    return None


def _on_screen(window, widget) -> bool:
    """``widget`` is shown whole inside the window (and inside its scroll area's view)."""
    if not widget.isVisible():
        return False
    top_left = widget.mapTo(window, QPoint(0, 0))
    rect = QRect(top_left, widget.size())
    if not window.rect().contains(rect):
        return False
    area = _scroll_ancestor(widget)
    if area is not None:
        view = area.viewport()
        vr = QRect(view.mapTo(window, QPoint(0, 0)), view.size())
        if not vr.contains(rect):
            return False
    return True


@pytest.mark.parametrize("size", [(1024, 700), (1366, 720)])
def test_every_control_is_reachable_on_a_laptop_screen(qtbot, make_window, size):
    w = make_window()
    w.ensure_chart()
    w.resize(*size)
    qtbot.waitUntil(lambda: w.size().width() == size[0] and w.size().height() == size[1],
                    timeout=5_000)
    QApplication.processEvents()
    assert w.height() <= size[1] and w.width() <= size[0]
    mp = w.model_panel
    controls = {"Model": mp.combo, "Reset": mp.reset, "Steps": mp.steps,
                "Device": mp.device, "Precision": mp.precision,
                "Samples every": mp.sample_every, "Checkpoint every": mp.checkpoint_every}
    controls.update({f"setting {k}": e for k, e in mp.form.editors.items()
                     if e.isVisibleTo(mp.form)})
    for name, widget in controls.items():
        for _ in range(2):   # once the scroll range follows the last resize
            QApplication.processEvents()
            mp.scroll_to(widget)
        QApplication.processEvents()
        area = _scroll_ancestor(widget)
        if area is None:
            assert _on_screen(w, widget), f"{name} cannot be reached at {size}"
        else:   # reachable: inside a scroll area on screen whose view can show it whole
            view = area.viewport()
            assert area.widget().isAncestorOf(widget) and _on_screen(w, view), name
            assert view.height() >= widget.height() and view.width() >= widget.width(), name
            assert area.verticalScrollBar().maximum() >= 0
    # the settings get the height the Run group leaves: more than a few rows
    assert mp.form_holder.height() >= 150, mp.form_holder.height()
    w.tasks.cancel_all()
    w.tasks.wait_all()


def test_estimate_before_start_and_faster_choices(qtbot, make_window):
    w = make_window()
    est = w.estimator
    est.timer.setInterval(10)
    w.model_panel.steps.setValue(400)
    with qtbot.waitSignal(est.estimated, timeout=60_000) as blocker:
        pass
    first, _alts = blocker.args
    assert first.steps == 400 and first.total_seconds > 0
    text = w.model_panel.estimate_box.label.text()
    assert f"about {format_duration(first.total_seconds)}</b> for 400 steps" in text
    # and in the status bar, in view whatever the settings dock scrolls to
    assert w.status_labels["eta"].text() == \
        f"Estimate {format_duration(first.total_seconds)} on {first.device}"
    # a long run (here: longer than a third of this one) gets one-click faster choices
    # (measured again each time: on a shared machine two measurements can differ a lot)
    last, alts = first, []
    for steps in (401, 402, 403):
        est.long_s = last.total_seconds / 3
        with qtbot.waitSignal(est.estimated, timeout=60_000) as blocker:
            w.model_panel.steps.setValue(steps)
        last, alts = blocker.args
        if alts:
            break
    assert alts, "a run three times too long gets a shorter choice"
    buttons = w.model_panel.estimate_box.choices
    assert len(buttons) == len(alts) and all(b.isVisibleTo(w) for b in buttons)
    pick = next(i for i, a in enumerate(alts) if "steps" in a.changes)
    assert format_duration(alts[pick].total_seconds) in buttons[pick].text()
    with qtbot.waitSignal(est.estimated, timeout=60_000) as blocker:
        buttons[pick].click()
    assert w.model_panel.steps.value() == alts[pick].changes["steps"] < 401
    assert blocker.args[0].steps == alts[pick].changes["steps"]
    w.tasks.wait_all()


def test_settings_changes_are_debounced(qtbot, make_window):
    w = make_window()
    est = w.estimator
    est.timer.setInterval(300)
    started = []
    real = est.measure_now
    est.measure_now = lambda: (started.append(1), real())  # noqa: E731
    est.timer.timeout.disconnect()
    est.timer.timeout.connect(est.measure_now)
    for steps in (100, 200, 300, 400, 500):
        w.model_panel.steps.setValue(steps)
    with qtbot.waitSignal(est.estimated, timeout=60_000) as blocker:
        pass
    assert started == [1] and blocker.args[0].steps == 500
    w.tasks.wait_all()


def test_settings_are_remembered_per_model_across_launches(qtbot, make_window, tmp_path):
    from PySide6.QtCore import QSettings
    store = tmp_path / "elsewhere" / "studio.ini"
    first_settings = QSettings(str(store), QSettings.IniFormat)
    from ganstudio.gui.main_window import MainWindow, StudioOptions
    w = make_window(set=[])
    # a window on its own settings file, as a fresh launch would read
    w1 = MainWindow(StudioOptions(model="dcgan", device="cpu",
                                  runs_root=str(tmp_path / "runs")), first_settings)
    w1.confirm_close = lambda: True
    qtbot.addWidget(w1)
    w1.set_plugin_manager(w.pm)
    w1.model_panel.form.set_values({"resolution": 32, "batch_size": 16})
    w1.model_panel.steps.setValue(777)
    w1.close()
    first_settings.sync()
    again = QSettings(str(store), QSettings.IniFormat)
    w2 = MainWindow(StudioOptions(model="dcgan", device="cpu",
                                  runs_root=str(tmp_path / "runs")), again)
    w2.confirm_close = lambda: True
    qtbot.addWidget(w2)
    w2.set_plugin_manager(w.pm)
    values = w2.model_panel.config()
    assert (values["resolution"], values["batch_size"]) == (32, 16)
    assert w2.model_panel.steps.value() == 777
    # the defaults are what a launch without remembered settings shows
    w3 = MainWindow(StudioOptions(model="dcgan", device="cpu",
                                  runs_root=str(tmp_path / "runs")),
                    QSettings(str(tmp_path / "fresh.ini"), QSettings.IniFormat))
    w3.confirm_close = lambda: True
    qtbot.addWidget(w3)
    w3.set_plugin_manager(w.pm)
    spec = w3.model_panel.current_spec()
    assert w3.model_panel.config()["batch_size"] == spec.field("batch_size").default != 16
    for win in (w2, w3):
        win.close()


def test_metrics_have_tooltips_and_a_help_page(qtbot, make_window):
    from ganstudio.gui.metric_help import CurvesHelp, metric_tooltip
    w = make_window()
    w.ensure_chart()
    w.chart.add_point(1, {"loss_d": 1.0, "loss_g": 2.0, "d_auc": 0.7, "kid": 0.1,
                          "my_metric": 3.0})
    items = {w.chart.metric_list.item(i).text(): w.chart.metric_list.item(i)
             for i in range(w.chart.metric_list.count())}
    for name in ("loss_d", "loss_g", "d_auc", "kid"):
        tip = items[name].toolTip()
        assert tip == metric_tooltip(name) and len(tip) > 60 and name in tip
    assert "0.5" in items["d_auc"].toolTip()              # what the number means
    assert "Reading the curves" in items["my_metric"].toolTip()
    action = w.window_actions.curves_action
    assert action.text() == "Reading the curves"
    action.trigger()
    dlg = w.window_actions.curves_help
    assert isinstance(dlg, CurvesHelp) and dlg.isVisible()
    text = dlg.text.toPlainText()
    for name in ("loss_d", "loss_g", "d_auc", "d_overfit", "diversity", "kid", "fid"):
        assert name in text
    dlg.close()


def test_dataset_panel_counts_other_files_and_greyscale_sets_one_channel(qtbot, make_window,
                                                                          tmp_path):
    folder = tmp_path / "grey"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        v = rng.integers(0, 256, (32, 32), dtype=np.uint8)
        Image.fromarray(np.stack([v, v, v], 2)).save(folder / f"g{i}.png")
    (folder / "notes.txt").write_text("x")
    (folder / "list.csv").write_text("x")
    w = make_window(set=[])
    assert w.model_panel.config()["channels"] == 3
    with qtbot.waitSignal(w.dataset_panel.scanned, timeout=30_000):
        w.dataset_panel.set_folder(str(folder))
    text = w.dataset_panel.info.text()
    assert "2 files that are not images left out" in text
    assert "greyscale" in text and "Channels set to 1" in text
    assert w.model_panel.config()["channels"] == 1
    # a colour folder after it leaves the user's choice alone
    w.model_panel.form.set_values({"channels": 3})
    w.tasks.wait_all()


def test_a_long_faster_choice_wraps_instead_of_widening_the_dock(qtbot):
    from types import SimpleNamespace

    from PySide6.QtCore import Qt
    from ganstudio.gui.estimate_view import EstimateBox
    box = EstimateBox()
    qtbot.addWidget(box)
    changes = {"resolution": 32, "batch_size": 16, "g_features": 32, "d_features": 32}
    est = SimpleNamespace(total_seconds=80_000, steps=10_000, device="cpu",
                          images_per_second=20.0)
    alt = SimpleNamespace(total_seconds=454, changes=changes)
    box.show_estimate(est, [alt], long_s=3600)
    box.resize(200, 400)
    box.show()
    (button,) = box.choices
    assert box.minimumSizeHint().width() < 200          # wraps: the dock keeps its width
    assert "about 7 min 34 s" in button.text() and button.label.wordWrap()
    with qtbot.waitSignal(box.chosen) as chosen:
        button.setFocus()
        qtbot.keyClick(button, Qt.Key_Return)         # the keyboard chooses too
    assert chosen.args == [changes]
