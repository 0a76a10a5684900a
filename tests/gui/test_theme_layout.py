"""A theme switch recolours the studio; it must not move its layout.

Switching View > theme to light once widened the left dock by 36 px, and switching back to
dark left it wide: the model list's minimum width had been measured on "Loading models…"
and a style change re-measured it on the longest model name.
"""
from __future__ import annotations

import dataclasses

import pytest

from tests.gui.conftest import SpecPlugin

LONG_NAME = "MSG-GAN (multi-scale gradients, a rather long display name)"


@pytest.fixture
def long_name_pm(tiny_pm):
    from ganstudio.plugins import PluginManager
    tiny = tiny_pm.get_model("tiny")
    short_spec = dataclasses.replace(tiny, plugin="")
    long_spec = dataclasses.replace(tiny, id="tiny-long", name=LONG_NAME, plugin="")
    return PluginManager(load_entry_points=False, load_folder=False,
                         extra=[("tinyplugin", SpecPlugin(short_spec)),
                                ("longplugin", SpecPlugin(long_spec))])


def _settle(qtbot, qapp):
    qapp.processEvents()
    qtbot.wait(1)
    qapp.processEvents()


def test_a_light_and_back_round_trip_keeps_the_dock_width(qtbot, qapp, themed, make_window,
                                                          long_name_pm):
    themed("dark")  # as the studio starts: the theme first, then the window
    w = make_window(pm=long_name_pm, model="tiny", set=[])
    names = [w.model_panel.combo.itemText(i) for i in range(w.model_panel.combo.count())]
    assert any(LONG_NAME in n for n in names)
    _settle(qtbot, qapp)
    dark = (w.dataset_dock.width(), w.model_dock.width())
    long_text = w.model_panel.combo.fontMetrics().horizontalAdvance(LONG_NAME)
    assert dark[1] < long_text  # the long name would widen the dock if the list followed it

    w.set_theme("light")
    _settle(qtbot, qapp)
    light = (w.dataset_dock.width(), w.model_dock.width())
    w.set_theme("dark")
    _settle(qtbot, qapp)
    back = (w.dataset_dock.width(), w.model_dock.width())

    assert back == dark
    assert light[1] <= dark[1] + 4 and light[0] <= dark[0] + 4
    # Both themes ask the same of the model list, whatever the names in it.
    assert w.model_panel.combo.minimumSizeHint().width() < long_text


def test_the_model_list_minimum_does_not_follow_the_names(qtbot, themed):
    from ganstudio.gui.model_panel import ModelPanel
    themed("dark")
    panel = ModelPanel()
    qtbot.addWidget(panel)
    before = panel.combo.minimumSizeHint().width()
    short = type("Spec", (), {"id": "a", "name": "A", "help": "", "schema": []})()
    long = type("Spec", (), {"id": "b", "name": LONG_NAME, "help": "", "schema": []})()
    panel.set_models([short, long])
    themed("light")
    light = panel.combo.minimumSizeHint().width()
    themed("dark")
    assert panel.combo.minimumSizeHint().width() == before
    assert abs(light - before) <= 12  # the themes' paddings differ, the names do not count
