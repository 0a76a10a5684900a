"""Config schemas: Field validation, defaults, overrides, --set parsing."""
from __future__ import annotations

import math

import pytest

from ganstudio.core.config import (Field, common_gan_fields, defaults, parse_set_args,
                                   resolve_config)
from ganstudio.core.errors import ConfigError, UserError


def test_int_field_converts_strings_and_integral_floats():
    f = Field("steps", "int", 10, min=1, max=100)
    assert f.validate("42") == 42
    assert f.validate(" 7 ") == 7
    assert f.validate(3.0) == 3
    assert isinstance(f.validate(3.0), int)


@pytest.mark.parametrize("bad", ["4.5", 4.5, "ten", True, None, ""])
def test_int_field_rejects_non_integers(bad):
    f = Field("steps", "int", 10)
    with pytest.raises(ConfigError, match="setting 'steps': expected int"):
        f.validate(bad)


def test_int_bounds_are_inclusive_and_named():
    f = Field("batch_size", "int", 8, min=1, max=64)
    assert f.validate(1) == 1 and f.validate(64) == 64
    with pytest.raises(ConfigError, match="0 is below the minimum 1"):
        f.validate(0)
    with pytest.raises(ConfigError, match="65 is above the maximum 64"):
        f.validate("65")


def test_float_field():
    f = Field("lr", "float", 2e-4, min=1e-7, max=1.0)
    assert f.validate("1e-3") == pytest.approx(1e-3)
    assert f.validate(1) == 1.0 and isinstance(f.validate(1), float)
    for bad in ("nan", float("nan"), "abc", False):
        with pytest.raises(ConfigError, match="setting 'lr'"):
            f.validate(bad)
    # infinity is refused even without bounds
    for bad in ("inf", float("-inf")):
        with pytest.raises(ConfigError, match="setting 'scale': expected float"):
            Field("scale", "float", 1.0).validate(bad)
    with pytest.raises(ConfigError, match="below the minimum"):
        f.validate(0.0)


@pytest.mark.parametrize("raw,expected", [("true", True), ("Yes", True), ("1", True), ("on", True),
                                          ("false", False), ("NO", False), ("0", False),
                                          ("off", False), (True, True), (0, False)])
def test_bool_field_accepts_common_spellings(raw, expected):
    assert Field("flip", "bool", True).validate(raw) is expected


@pytest.mark.parametrize("bad", ["maybe", "", 1.5, None])
def test_bool_field_rejects_other_values(bad):
    with pytest.raises(ConfigError, match="setting 'flip': expected bool"):
        Field("flip", "bool", True).validate(bad)


def test_choice_keeps_the_typed_choice():
    f = Field("resolution", "choice", 64, choices=[32, 64, 128])
    assert f.validate("128") == 128
    assert isinstance(f.validate("128"), int)
    with pytest.raises(ConfigError, match=r"'48' is not one of 32, 64, 128"):
        f.validate("48")


def test_str_and_path_fields_need_strings():
    assert Field("name", "str", "x").validate("hello") == "hello"
    assert Field("style", "path", "").validate("/tmp/a.png") == "/tmp/a.png"
    with pytest.raises(ConfigError):
        Field("name", "str", "x").validate(3)


def test_bad_field_definitions_fail_early():
    with pytest.raises(ValueError, match="unknown type 'integer'"):
        Field("n", "integer", 1)
    with pytest.raises(ValueError, match="needs choices"):
        Field("mode", "choice", "a")
    # the default must itself be valid: catches plugin typos at import time
    with pytest.raises(ConfigError, match="below the minimum"):
        Field("n", "int", 0, min=1)
    with pytest.raises(ConfigError, match="not one of"):
        Field("mode", "choice", "c", choices=["a", "b"])


def test_title_and_to_dict():
    f = Field("lr_d", "float", 2e-4, "Discriminator learning rate.", min=0.0, group="Training")
    assert f.title == "Lr d"
    assert Field("lr_d", "float", 1.0, label="D learning rate").title == "D learning rate"
    d = f.to_dict()
    assert d == {"name": "lr_d", "type": "float", "default": 2e-4,
                 "help": "Discriminator learning rate.", "min": 0.0, "max": None,
                 "choices": None, "label": "Lr d", "group": "Training", "advanced": False,
                 "item_type": "str", "optional": False}


SCHEMA = [Field("a", "int", 1, min=0, max=10), Field("b", "float", 0.5),
          Field("c", "choice", "x", choices=["x", "y"])]


def test_defaults_and_resolve_order():
    assert defaults(SCHEMA) == {"a": 1, "b": 0.5, "c": "x"}
    assert resolve_config(SCHEMA) == {"a": 1, "b": 0.5, "c": "x"}
    # base (a saved config) over defaults, overrides over base
    cfg = resolve_config(SCHEMA, {"a": "3"}, base={"a": 2, "c": "y"})
    assert cfg == {"a": 3, "b": 0.5, "c": "y"}


def test_resolve_drops_stale_base_keys_but_refuses_unknown_overrides():
    cfg = resolve_config(SCHEMA, base={"a": 4, "removed_setting": 1})
    assert cfg == {"a": 4, "b": 0.5, "c": "x"}
    with pytest.raises(ConfigError) as e:
        resolve_config(SCHEMA, {"d": 1})
    msg = str(e.value)
    assert "unknown setting 'd'" in msg and "a, b, c" in msg
    assert isinstance(e.value, UserError)  # the CLI turns it into exit code 2


def test_resolve_validates_base_values_too():
    with pytest.raises(ConfigError, match="setting 'a'.*above the maximum 10"):
        resolve_config(SCHEMA, base={"a": 11})


def test_parse_set_args():
    assert parse_set_args(["lr_d=1e-4", " batch_size = 16", "name=a=b"]) == {
        "lr_d": "1e-4", "batch_size": "16", "name": "a=b"}
    assert parse_set_args([]) == {} and parse_set_args(None) == {}
    for bad in ("novalue", "=3"):
        with pytest.raises(ConfigError, match="--set expects key=value"):
            parse_set_args([bad])


def test_common_gan_fields():
    fields = {f.name: f for f in common_gan_fields(resolution=32, resolutions=(16, 32),
                                                   channels=1, batch_size=8)}
    assert set(fields) == {"resolution", "channels", "fit", "flip", "batch_size", "seed"}
    assert fields["resolution"].default == 32 and list(fields["resolution"].choices) == [16, 32]
    assert fields["channels"].default == 1 and list(fields["channels"].choices) == [1, 3]
    assert fields["fit"].validate("pad") == "pad"
    with pytest.raises(ConfigError):
        fields["batch_size"].validate(0)
    assert fields["seed"].validate(str(2**31 - 1)) == 2**31 - 1


# -- list, multi-choice and optional ("automatic") settings ---------------------------------------
def _new_types():
    from ganstudio.core.config import Field
    return [
        Field("attn_res_layers", "list", [32], "Resolutions with attention.", min=4, max=1024,
              item_type="int"),
        Field("aug_types", "multichoice", ["color", "translation"], "Augmentations.",
              choices=["color", "translation", "cutout"]),
        Field("aug_prob", "float", None, "Augmentation probability; automatic by default.",
              min=0.0, max=1.0, optional=True),
    ]


def test_list_multichoice_and_optional_fields_parse_from_set_arguments():
    from ganstudio.core.config import parse_set_args, resolve_config
    schema = _new_types()
    assert resolve_config(schema) == {"attn_res_layers": [32], "aug_types": ["color", "translation"],
                                      "aug_prob": None}
    raw = parse_set_args(["attn_res_layers=32,64", "aug_types=cutout,color",
                          "aug_prob=0.25"])
    assert resolve_config(schema, raw) == {"attn_res_layers": [32, 64],
                                           "aug_types": ["cutout", "color"], "aug_prob": 0.25}
    back = resolve_config(schema, parse_set_args(["aug_prob=auto", "attn_res_layers=",
                                                  "aug_types=[color]"]))
    assert back == {"attn_res_layers": [], "aug_types": ["color"], "aug_prob": None}
    # a run.json round trip keeps the types
    import json
    saved = json.loads(json.dumps(resolve_config(schema, raw)))
    assert resolve_config(schema, base=saved) == resolve_config(schema, raw)


@pytest.mark.parametrize("setting, message", [
    ("attn_res_layers=32,2048", "an item of 'attn_res_layers': 2048 is above the maximum 1024"),
    ("attn_res_layers=32,x", "an item of 'attn_res_layers': expected int, got 'x'"),
    ("aug_types=color,blur", "setting 'aug_types': 'blur' is not one of color, translation, cutout"),
    ("aug_prob=1.5", "setting 'aug_prob': 1.5 is above the maximum 1.0"),
])
def test_bad_values_of_the_new_types_name_the_setting(setting, message):
    from ganstudio.core.config import parse_set_args, resolve_config
    from ganstudio.core.errors import ConfigError
    with pytest.raises(ConfigError) as info:
        resolve_config(_new_types(), parse_set_args([setting]))
    assert str(info.value) == message


def test_only_optional_fields_take_automatic():
    from ganstudio.core.config import Field
    from ganstudio.core.errors import ConfigError
    with pytest.raises(ConfigError, match="expected float"):
        Field("lr", "float", 1e-3, "h", min=0, max=1).validate("auto")
    with pytest.raises(ValueError, match="needs choices"):
        Field("m", "multichoice", [], "h")
    with pytest.raises(ValueError, match="item_type"):
        Field("l", "list", [], "h", item_type="bool")
