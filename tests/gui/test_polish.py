"""Details a first-time user meets: the Advanced fold's tick box, scrolling a settings form
with the mouse wheel, a narrow settings dock, theme switches, colours of many metrics and
the README screenshot script."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import (QApplication, QScrollArea, QStyle, QStyleOptionGroupBox,
                               QVBoxLayout, QWidget)

from ganstudio.core.config import Field
from ganstudio.gui.forms import SettingsForm

ROOT = Path(__file__).resolve().parents[2]


def _wheel(widget, dy: int = -120) -> QWheelEvent:
    centre = QPointF(widget.rect().center())
    event = QWheelEvent(centre, QPointF(widget.mapToGlobal(centre.toPoint())), QPoint(0, 0),
                        QPoint(0, dy), Qt.NoButton, Qt.NoModifier, Qt.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)
    return event


SCHEMA = [
    Field("resolution", "choice", 64, "Image size.", choices=[32, 64, 128], group="Data"),
    Field("g_features", "int", 64, "Generator width.", min=8, max=512),
    Field("instance_noise_steps", "int", 2000, "Noise fade-out.", min=0, advanced=True),
]


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_advanced_fold_tick_box_is_drawn_inside_the_box(qtbot, themed, theme):
    """The fold's check box sat one pixel above its group box, so its top edge was cut off
    (in the dark theme an unticked box looked like an open cup, or like nothing at all)."""
    themed(theme)
    holder = QWidget()
    lay = QVBoxLayout(holder)
    lay.setContentsMargins(0, 0, 0, 0)
    form = SettingsForm(SCHEMA)
    lay.addWidget(form)
    qtbot.addWidget(holder)
    holder.resize(260, 300)
    holder.show()
    box = form.advanced_box
    assert box is not None and box.isCheckable() and not box.isChecked()
    opt = QStyleOptionGroupBox()
    box.initStyleOption(opt)
    rect = box.style().subControlRect(QStyle.CC_GroupBox, opt, QStyle.SC_GroupBoxCheckBox, box)
    assert rect.top() >= 0 and rect.height() >= 10, rect
    if theme == "dark":
        # The unticked indicator: a light 1 px border around a dark square, all four sides.
        img = box.grab().toImage()
        dpr = img.devicePixelRatio()
        cx, cy = int(rect.center().x() * dpr), int(rect.center().y() * dpr)
        inside = img.pixelColor(cx, cy).lightness()
        top = max(img.pixelColor(cx, y).lightness() for y in range(int(rect.top() * dpr), cy))
        bottom = max(img.pixelColor(cx, y).lightness()
                     for y in range(cy, int((rect.bottom() + 1) * dpr)))
        assert top - inside > 60 and bottom - inside > 60, (top, inside, bottom)


def test_wheel_scrolls_past_settings_instead_of_changing_them(qtbot):
    """Scrolling the settings list with the wheel must not change the value that passes
    under the pointer; a focused editor (clicked or tabbed into) still takes the wheel."""
    form = SettingsForm(SCHEMA)
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setWidget(form)
    qtbot.addWidget(area)
    area.show()
    spin, combo = form.editors["g_features"], form.editors["resolution"]
    for editor, before in ((spin, 64), (combo, 64)):
        event = _wheel(editor)
        assert not event.isAccepted()  # left for the scroll area
        assert form.values()[editor.objectName().removeprefix("field_")] == before
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus)
    _wheel(spin)
    assert spin.value() == 63


def test_wheel_leaves_the_model_and_run_settings_alone(qtbot, plugin_manager):
    from ganstudio.gui.model_panel import ModelPanel
    panel = ModelPanel()
    qtbot.addWidget(panel)
    panel.set_models(plugin_manager.models(kind="gan"))
    panel.show()
    assert panel.combo.count() >= 2
    first = panel.current_spec().id
    for editor in (panel.combo, panel.steps, panel.device, panel.precision):
        _wheel(editor)
    assert panel.current_spec().id == first
    assert panel.steps.value() == 10_000
    assert panel.device.currentText() == "auto" and panel.precision.currentText() == "auto"


def test_dcgan_settings_fit_the_narrow_dock_with_advanced_open(qtbot, plugin_manager):
    """Opening Advanced used to need 300 px and brought a sideways scroll bar into the
    250 px settings dock; long rows now put the editor under its label."""
    form = SettingsForm(plugin_manager.get_model("dcgan").schema)
    qtbot.addWidget(form)
    form.advanced_box.setChecked(True)
    assert form.minimumSizeHint().width() <= 230


def test_message_bar_and_style_chart_follow_the_theme(qtbot, make_window):
    from ganstudio.gui.theme import CHART_COLOURS
    w = make_window()
    try:
        w.info_bar.show_message("hello", "info")
        w.set_theme("light")
        assert w.info_bar.colours() == ("#dbe8fc", "#17457f")
        assert "#dbe8fc" in w.info_bar.styleSheet()
        style_tab = w.panel_host.panels["style-transfer"]   # the style plugin's tab
        bg = style_tab.chart.plot.backgroundBrush().color().name()
        assert bg == CHART_COLOURS["light"]["background"]
        w.info_bar.show_message("careful", "warning")
        assert w.info_bar.colours() == ("#fcefc7", "#6b4a00")
    finally:
        w.set_theme("dark")
    assert w.info_bar.colours() == ("#4a3b12", "#ffd27a")


def test_a_dozen_metrics_get_a_dozen_colours(qtbot):
    from ganstudio.gui.chart import MetricsChart
    chart = MetricsChart()
    qtbot.addWidget(chart)
    names = ["loss_g", "loss_d", "d_real", "d_fake", "d_acc_real", "d_acc_fake", "diversity",
             "d_check_real", "d_check_fake", "d_auc", "img_per_s", "kid"]
    chart.add_rows([{"step": 1, **{n: 0.5 for n in names}}])
    colours = {s.item.opts["pen"].color().name() for s in chart.series.values()}
    assert len(chart.series) == 12 and len(colours) == 12


def test_screenshot_script_trains_for_the_demo_step_count():
    """The README screenshots show a real run's ETA, not one of a million steps."""
    from ganstudio.gui.main_window import DEMO_SETTINGS, DEMO_STEPS
    path = ROOT / "resources" / "screenshots" / "take_screenshots.py"
    spec = importlib.util.spec_from_file_location("take_screenshots", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    argv = module.gui_argv("DATA", DEMO_STEPS, Path("RUNS"))
    assert argv[argv.index("--steps") + 1] == str(DEMO_STEPS)
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    assert sets == [f"{k}={v}" for k, v in DEMO_SETTINGS.items()]
    from ganstudio.cli import build_parser
    args = build_parser().parse_args(argv)
    assert args.steps == DEMO_STEPS and args.model == "dcgan" and args.autostart


def test_status_bar_names_bf16_when_the_run_uses_it(qtbot, make_window, tmp_path):
    from ganstudio.core.events import Started
    w = make_window()

    def start(reason, precision):
        w.trainer._on_started(Started(run_dir=str(tmp_path / "r"), model_id="dcgan", device="cpu",
                              device_reason=reason, step=0, total_steps=10, config={},
                              precision=precision))
        return w.status_labels["device"]

    label = start("auto: no GPU found, using the CPU; bf16 autocast (this CPU has AMX bf16 units)",
                  "bf16")
    assert label.text() == "cpu · bf16" and "AMX" in label.toolTip()
    assert start("requested", "fp32").text() == "cpu"
    w.trainer.set_state("idle")


def test_shortcuts_are_a_table_that_lines_up():
    from PySide6.QtGui import QTextDocument
    from ganstudio.gui.main_window import SHORTCUTS, shortcuts_html
    doc = QTextDocument()
    doc.setHtml(shortcuts_html())
    table = doc.rootFrame().childFrames()[0]
    assert table.rows() == len(SHORTCUTS) and table.columns() == 2
    assert table.cellAt(0, 0).firstCursorPosition().block().text() == "Start"
    assert table.cellAt(0, 1).firstCursorPosition().block().text() == SHORTCUTS["start"]


def test_reopening_on_the_demo_images_brings_their_light_settings_back(qtbot, make_window,
                                                                       settings):
    """The studio remembers the last folder; reopened on the demo images it used to train
    them at the model's 64 px defaults and 10,000 steps (an hour on a laptop CPU)."""
    from ganstudio.gui.main_window import DEMO_SETTINGS, DEMO_STEPS
    from ganstudio.gui.resources import demo_dataset_dir
    settings.setValue("last_data_folder", str(demo_dataset_dir()))
    w = make_window(set=[])
    assert w.dataset_panel.folder == str(demo_dataset_dir().absolute())
    cfg = w.model_panel.config()
    assert {k: cfg[k] for k in DEMO_SETTINGS} == DEMO_SETTINGS
    assert w.model_panel.steps.value() == DEMO_STEPS
    w.tasks.wait_all()

    steps = make_window(set=[], steps=500)  # a --steps on the command line still wins
    assert steps.model_panel.config()["resolution"] == DEMO_SETTINGS["resolution"]
    assert steps.model_panel.steps.value() == 500
    steps.tasks.wait_all()


def test_the_window_fits_a_1366_by_768_laptop(qtbot, make_window):
    """A 1366 x 768 screen less a 30 px panel: the default size and the window's minimum
    (both docks, the settings form and the Run box) fit, status bar included."""
    from PySide6.QtCore import QSize
    from ganstudio.gui.main_window import default_window_size
    assert default_window_size(QSize(1366, 738)) == QSize(1280, 738)
    assert default_window_size(QSize(2560, 1440)) == QSize(1280, 800)
    w = make_window()
    w.ensure_chart()
    hint = w.minimumSizeHint()
    assert hint.width() <= 1366 and hint.height() <= 738, hint
    assert w.model_panel.form_holder.minimumHeight() >= 100  # still a few settings rows


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_every_style_sheet_image_exists(theme):
    import re
    from ganstudio.gui.theme import style_sheet
    urls = re.findall(r"url\(([^)]+)\)", style_sheet(theme))
    assert urls and all(Path(u).is_file() for u in urls), urls
    assert "@ICONS@" not in style_sheet(theme)
