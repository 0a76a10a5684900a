"""What the studio says about the engine's warnings and failures.

The engine returns data: a ``kind``, the settings worth changing (``settings``),
run options (``run_options``) and an ``action``. The command line words the same
data in ``ganstudio.cli.messages``; here it is worded for the window, naming
settings as the Model panel shows them.
"""
from __future__ import annotations

from typing import Any

#: what a run option is called in the window
RUN_OPTION_LABELS = {"precision": "Precision", "device": "Device"}


def value_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(value_text(v) for v in value)
    if value is None:
        return "Automatic"
    return str(value)


def settings_text(settings: dict) -> str:
    """``{"batch_size": 32}`` -> ``batch_size = 32``."""
    return ", ".join(f"{k} = {value_text(v)}" for k, v in settings.items())


def advice(event: Any) -> str:
    """One sentence of advice for a Warning or Failed event ('' when none)."""
    kind = getattr(event, "kind", "")
    settings = dict(getattr(event, "settings", None) or {})
    options = dict(getattr(event, "run_options", None) or {})
    action = getattr(event, "action", "")
    if kind == "out_of_memory" and settings:
        return f"Try a smaller batch ({settings_text(settings)}) and resume."
    if kind == "precision" and options:
        opts = ", ".join(f"{RUN_OPTION_LABELS.get(k, k)} {value_text(v)}"
                         for k, v in options.items())
        return f"Resume with {opts} in the Run settings."
    if kind == "nan" and settings:
        return f"Lower learning rates ({settings_text(settings)}) should help."
    if action == "add_images":
        return ("The usual remedies are already in use: the folder may be too small or too "
                "varied. Add images, or keep to one kind of picture.")
    if settings:
        return f"Try {settings_text(settings)} in the Model settings, then resume."
    return ""


def with_advice(event: Any) -> str:
    """The event's message, capitalised, followed by its advice."""
    text = str(getattr(event, "message", ""))
    text = text[:1].upper() + text[1:]
    extra = advice(event)
    if extra:
        text = text.rstrip(".") + ". " + extra
    return text


def start_from_refusal(title: str, changed: list[tuple[str, Any, Any]], detail: str) -> str:
    """The engine refused to start a new run from ``title``'s weights because the networks
    do not fit: name the settings changed from that run (label, there, here), else the
    engine's own detail (which tensors differ)."""
    if changed:
        what = ", ".join(f"{label} {value_text(there)} → {value_text(here)}"
                         for label, there, here in changed)
        return (f"Cannot start from {title}: its networks do not fit these settings "
                f"(changed from that run: {what}). Set them back in the Model panel, or "
                "clear “starts from” (×) to train from scratch.")
    _, _, why = detail.partition(" do not fit this model: ")
    why = why or detail
    return (f"Cannot start from {title}: its networks do not fit this model ({why}). "
            "Clear “starts from” (×) to train from scratch.")
