"""The settings form generated from a plugin's schema, and the model panel."""
from __future__ import annotations

import pytest
from PySide6.QtWidgets import QCheckBox, QComboBox, QLineEdit, QSpinBox

from ganstudio.core.config import Field, defaults
from ganstudio.core.errors import ConfigError
from ganstudio.gui.forms import SettingsForm

SCHEMA = [
    Field("resolution", "choice", 64, "Image size.", choices=[32, 64, 128], group="Data"),
    Field("flip", "bool", True, "Random flips.", group="Data"),
    Field("batch_size", "int", 64, "Images per step.", min=1, max=4096),
    Field("lr", "float", 2e-4, "Learning rate.", min=1e-7, max=1.0),
    Field("name", "str", "run", "A label."),
    Field("weights", "path", "", "Optional weights file."),
    Field("seed", "int", 0, "Seed.", min=0, max=100, advanced=True),
]


def test_editors_follow_the_schema(qtbot):
    form = SettingsForm(SCHEMA)
    qtbot.addWidget(form)
    e = form.editors
    assert isinstance(e["resolution"], QComboBox) and e["resolution"].count() == 3
    assert isinstance(e["flip"], QCheckBox)
    assert isinstance(e["batch_size"], QSpinBox)
    assert (e["batch_size"].minimum(), e["batch_size"].maximum()) == (1, 4096)
    assert isinstance(e["lr"], QLineEdit) and e["lr"].text() == "0.0002"
    assert "Learning rate." in e["lr"].toolTip() and "1e-07" in e["lr"].toolTip()
    assert form.advanced_box is not None and not form.advanced_box.isChecked()
    assert form.values() == defaults(SCHEMA)


def test_round_trip_and_reset(qtbot):
    form = SettingsForm(SCHEMA)
    qtbot.addWidget(form)
    wanted = {"resolution": 128, "flip": False, "batch_size": 17, "lr": 3.5e-5,
              "name": "cats", "weights": "/tmp/w.pt", "seed": 42}
    assert form.set_values({**wanted, "bogus": 1}) == ["bogus"]
    assert form.values() == wanted
    assert isinstance(form.values()["resolution"], int)
    form.reset_defaults()
    assert form.values() == defaults(SCHEMA)


def test_invalid_text_is_flagged_and_named(qtbot):
    form = SettingsForm(SCHEMA)
    qtbot.addWidget(form)
    form.editors["lr"].setText("fast")
    assert form.editors["lr"].property("invalid") is True
    with pytest.raises(ConfigError, match="'lr'"):
        form.values()
    form.editors["lr"].setText("2")
    with pytest.raises(ConfigError, match="above the maximum"):
        form.values()
    form.editors["lr"].setText("1e-3")
    assert form.editors["lr"].property("invalid") is False
    assert form.values()["lr"] == pytest.approx(1e-3)


def test_model_panel_lists_gan_models_and_builds_their_form(qtbot, plugin_manager):
    from ganstudio.gui.model_panel import ModelPanel
    panel = ModelPanel()
    qtbot.addWidget(panel)
    gans = plugin_manager.models(kind="gan")
    panel.set_models(gans, [("broken", "ImportError: nope")])
    assert panel.combo.count() == len(gans) and panel.select_model("dcgan")
    spec = panel.current_spec()
    assert spec.id == "dcgan"
    assert set(panel.form.editors) == {f.name for f in spec.schema}
    assert panel.config() == defaults(spec.schema)
    assert "broken" in panel.plugin_note.text()
    panel.steps.setValue(1234)
    panel.set_device("cpu")
    st = panel.engine_settings()
    assert st["total_steps"] == 1234 and st["device"] == "cpu" and st["on_nan"] == "pause"
    assert st["precision"] == "auto"
    panel.set_precision("fp32")
    assert panel.engine_settings()["precision"] == "fp32"
    panel.set_precision("fp8")                      # not a choice: left as it was
    assert panel.engine_settings()["precision"] == "fp32"
