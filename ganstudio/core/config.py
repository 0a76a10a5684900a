"""Config schemas: typed fields with defaults, bounds, choices and help.

A model plugin describes its settings as a list of :class:`Field`. The studio
builds its settings form from that list, the CLI parses ``--set key=value``
against it, and :func:`resolve_config` validates a whole config.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from .errors import ConfigError

_TYPES = {"int": int, "float": float, "bool": bool, "str": str, "choice": str, "path": str,
          "list": list, "multichoice": list}
#: item types of a ``list`` field
_ITEM_TYPES = ("int", "float", "str")
#: what ``--set key=...`` (or a form) may write for "automatic" in an optional field
AUTOMATIC_WORDS = ("auto", "automatic", "none")


@dataclass(frozen=True)
class Field:
    """One setting of a model.

    ``type`` is one of ``int``, ``float``, ``bool``, ``str``, ``choice``
    (one of ``choices``), ``path`` (a file path; empty string = unset),
    ``list`` (a list of ``item_type`` values - ``int``, ``float`` or ``str`` -
    each within ``min``/``max``; ``--set sizes=32,64``) or ``multichoice``
    (any subset of ``choices``, in the order given; ``--set aug=color,cutout``).
    ``optional`` fields also take None, "automatic": the plugin decides
    (``--set aug_prob=auto``; the form shows an *Automatic* check box).
    ``group`` is a heading for the settings form ("Model", "Training", ...).
    ``advanced`` fields are folded away in the form by default.
    """

    name: str
    type: str
    default: Any
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: Sequence[Any] | None = None
    label: str | None = None
    group: str = "Training"
    advanced: bool = False
    item_type: str = "str"
    optional: bool = False

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise ValueError(f"field '{self.name}': unknown type '{self.type}'")
        if self.type in ("choice", "multichoice") and not self.choices:
            raise ValueError(f"field '{self.name}': a {self.type} field needs choices")
        if self.type == "list" and self.item_type not in _ITEM_TYPES:
            raise ValueError(f"field '{self.name}': item_type must be one of "
                             f"{', '.join(_ITEM_TYPES)}")
        # The default itself must pass validation: catches plugin typos early.
        self.validate(self.default)

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()

    def validate(self, value: Any) -> Any:
        """Return ``value`` converted to this field's type, or raise ConfigError."""
        if self.optional and (value is None or (isinstance(value, str)
                                                and value.strip().lower() in AUTOMATIC_WORDS)):
            return None
        if self.type == "list":
            return [self._scalar(item, self.item_type, f"an item of '{self.name}'")
                    for item in _items(value, self.name)]
        if self.type == "multichoice":
            out: list[Any] = []
            for item in _items(value, self.name):
                item = self._choice(item)
                if item not in out:
                    out.append(item)
            return out
        if self.type == "choice":
            return self._choice(value)
        return self._scalar(value, self.type, f"setting '{self.name}'")

    def _choice(self, value: Any) -> Any:
        """``value`` as one of ``choices`` (keeping the choice's own type, e.g. int)."""
        for c in self.choices or []:
            if str(c) == str(value).strip() if isinstance(value, str) else str(c) == str(value):
                return c
        allowed = ", ".join(str(c) for c in (self.choices or []))
        raise ConfigError(f"setting '{self.name}': {value!r} is not one of {allowed}")

    def _scalar(self, value: Any, kind: str, what: str) -> Any:
        try:
            if kind == "bool":
                if isinstance(value, str):
                    low = value.strip().lower()
                    if low in ("1", "true", "yes", "on"):
                        value = True
                    elif low in ("0", "false", "no", "off"):
                        value = False
                    else:
                        raise ValueError
                elif isinstance(value, (bool, int)):
                    value = bool(value)
                else:
                    raise ValueError
            elif kind == "int":
                if isinstance(value, bool):
                    raise ValueError
                if isinstance(value, float):
                    if not value.is_integer():
                        raise ValueError
                    value = int(value)
                value = int(str(value).strip()) if isinstance(value, str) else int(value)
            elif kind == "float":
                if isinstance(value, bool):
                    raise ValueError
                value = float(value)
                if not math.isfinite(value):  # NaN and infinity are never a usable setting
                    raise ValueError
            elif not isinstance(value, str):
                raise ValueError
        except (TypeError, ValueError):
            raise ConfigError(f"{what}: expected {kind}, got {value!r}") from None
        if kind in ("int", "float"):
            if self.min is not None and value < self.min:
                raise ConfigError(f"{what}: {value} is below the minimum {self.min}")
            if self.max is not None and value > self.max:
                raise ConfigError(f"{what}: {value} is above the maximum {self.max}")
        return value

    def to_dict(self) -> dict:
        return {
            "name": self.name, "type": self.type, "default": self.default, "help": self.help,
            "min": self.min, "max": self.max,
            "choices": list(self.choices) if self.choices is not None else None,
            "label": self.title, "group": self.group, "advanced": self.advanced,
            "item_type": self.item_type, "optional": self.optional,
        }


def _items(value: Any, name: str) -> list[Any]:
    """A list value: a list or tuple, or text with comma-separated items ("" = empty)."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        return [part.strip() for part in text.split(",") if part.strip()]
    raise ConfigError(f"setting '{name}': expected a list (comma-separated), got {value!r}")


def defaults(schema: Iterable[Field]) -> dict[str, Any]:
    return {f.name: f.default for f in schema}


def resolve_config(schema: Sequence[Field], overrides: dict[str, Any] | None = None,
                   *, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults, then ``base`` (e.g. a saved config), then ``overrides``; all validated.

    Unknown keys raise :class:`ConfigError` naming the key and the known ones.
    Keys in ``base`` that the schema no longer has are dropped silently (an
    older run of a newer plugin), keys in ``overrides`` are not.
    """
    by_name = {f.name: f for f in schema}
    config = defaults(schema)
    for key, value in (base or {}).items():
        if key in by_name:
            config[key] = by_name[key].validate(value)
    for key, value in (overrides or {}).items():
        if key not in by_name:
            known = ", ".join(sorted(by_name))
            raise ConfigError(f"unknown setting '{key}' (known: {known})")
        config[key] = by_name[key].validate(value)
    return config


def parse_set_args(items: Iterable[str]) -> dict[str, str]:
    """Parse ``key=value`` strings from ``--set`` into a dict of raw strings."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got '{item}'")
        key, value = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"--set expects key=value, got '{item}'")
        out[key] = value.strip()
    return out


# Fields every GAN model shares; the engine reads them to prepare the data.
def common_gan_fields(*, resolution: int = 64, resolutions: Sequence[int] = (32, 64, 128),
                      channels: int = 3, batch_size: int = 64) -> list[Field]:
    """The fields the engine needs from every folder-trained model.

    ``resolution`` and ``channels`` decide how the dataset is prepared,
    ``fit`` how images of other aspect ratios are made square, ``batch_size``
    how many images one step sees, ``flip`` random horizontal flips, and
    ``seed`` the run's random seed.
    """
    return [
        Field("resolution", "choice", resolution, "Training image size in pixels (square).",
              choices=list(resolutions), group="Data"),
        Field("channels", "choice", channels, "1 = grayscale, 3 = colour.", choices=[1, 3],
              group="Data"),
        Field("fit", "choice", "crop", "How non-square images become square: centre-crop or pad.",
              choices=["crop", "pad"], group="Data"),
        Field("flip", "bool", True, "Random horizontal flips of the training images.",
              group="Data"),
        Field("batch_size", "int", batch_size, "Images per training step.", min=1, max=65536),
        Field("seed", "int", 0, "Random seed of the run (weights, noise, batches).", min=0,
              max=2**31 - 1, advanced=True),
    ]
