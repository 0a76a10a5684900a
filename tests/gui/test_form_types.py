"""The settings form for list, multi-choice and optional ("automatic") settings."""
from __future__ import annotations

import pytest

from ganstudio.core.config import Field
from ganstudio.core.errors import ConfigError


def schema():
    return [
        Field("attn_res_layers", "list", [32], "Resolutions with attention.", min=4, max=1024,
              item_type="int"),
        Field("aug_types", "multichoice", ["color"], "Augmentations.",
              choices=["color", "translation", "cutout"]),
        Field("aug_prob", "float", None, "Augmentation probability.", min=0.0, max=1.0,
              optional=True),
        Field("size", "int", 8, "A number that may be automatic.", min=1, max=64, optional=True),
    ]


def test_new_field_types_have_editors_and_round_trip(qtbot):
    from PySide6.QtWidgets import QCheckBox, QLineEdit, QSpinBox
    from ganstudio.gui.forms import MultiChoice, SettingsForm
    form = SettingsForm(schema())
    qtbot.addWidget(form)
    assert isinstance(form.editors["attn_res_layers"], QLineEdit)
    assert isinstance(form.editors["aug_types"], MultiChoice)
    assert isinstance(form.editors["size"], QSpinBox)
    assert form.values() == {"attn_res_layers": [32], "aug_types": ["color"], "aug_prob": None,
                             "size": 8}
    auto = form.findChild(QCheckBox, "auto_aug_prob")
    assert auto.isChecked() and not form.editors["aug_prob"].isEnabled()

    form.set_values({"attn_res_layers": [16, 64], "aug_types": ["cutout", "color"],
                     "aug_prob": 0.3, "size": None})
    assert form.editors["attn_res_layers"].text() == "16, 64"
    assert not auto.isChecked() and form.editors["aug_prob"].isEnabled()
    assert form.findChild(QCheckBox, "auto_size").isChecked()
    assert form.values() == {"attn_res_layers": [16, 64], "aug_types": ["color", "cutout"],
                             "aug_prob": 0.3, "size": None}
    form.editors["aug_types"].findChild(QCheckBox, "choice_translation").setChecked(True)
    assert form.values()["aug_types"] == ["color", "translation", "cutout"]


def test_a_bad_list_item_is_flagged_and_named(qtbot):
    from ganstudio.gui.forms import SettingsForm
    form = SettingsForm(schema())
    qtbot.addWidget(form)
    form.editors["attn_res_layers"].setText("32, 5000")
    assert form.editors["attn_res_layers"].property("invalid") is True
    with pytest.raises(ConfigError, match="5000 is above the maximum 1024"):
        form.values()
