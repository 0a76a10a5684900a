"""The kit's results and messages: check names and statuses, :class:`CheckResult`,
:class:`ConformanceError`, the one-line report of a failure and the whole report."""
from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PASS, FAIL, SKIP, WARN = "pass", "fail", "skip", "warn"

#: Steps of the uninterrupted run; the resume check stops halfway and resumes.
KIT_STEPS = 4
#: Batch size the kit asks for (clamped to the setting's bounds).
KIT_BATCH = 4
#: Number of generated training images.
KIT_IMAGES = 12
#: The older way to shrink a plugin's models for the kit, still honoured after
#: ``ModelSpec.test_settings``: a module attribute
#: ``GANSTUDIO_TEST_SETTINGS = {"model_id": {"setting": value, ...}}``.
TEST_SETTINGS_ATTR = "GANSTUDIO_TEST_SETTINGS"

_GAN_METHODS = ("train_step", "make_latents", "sample", "state_dict", "load_state_dict",
                "generator_module", "status")
_JOB_METHODS = ("train_step", "preview", "state_dict", "load_state_dict", "status")
_WEIGHT_WORDS = ("weight", "checkpoint", "ckpt", "vgg", "model", "pretrained")


class ConformanceError(AssertionError):
    """A check failed; the message says what to change."""


@dataclass
class CheckResult:
    """Outcome of one check of one model (``model`` is "" for plugin-level checks)."""

    model: str
    name: str
    status: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status != FAIL

    def line(self) -> str:
        return f"{self.status.upper():<4}  {self.name:<8} {self.detail}".rstrip()



def _describe(value: Any) -> str:
    try:
        import torch
        if isinstance(value, torch.Tensor):
            return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    except ImportError:  # pragma: no cover
        pass
    return f"a {type(value).__name__}"


def _failure_text(event: Any) -> str:
    msg = getattr(event, "message", str(event))
    tb = getattr(event, "traceback", "") or ""
    where = _plugin_frame(tb)
    return msg + (f" ({where})" if where else "")


def _plugin_frame(tb: str) -> str:
    """'file.py, line N' of the innermost frame outside torch and ganstudio itself."""
    frames = [ln.strip() for ln in tb.splitlines() if ln.strip().startswith('File "')]
    for line in reversed(frames):
        path = line.split('"')[1]
        norm = path.replace("\\", "/")
        if "/torch/" in norm or "/ganstudio/" in norm or "/pluggy/" in norm:
            continue
        lineno = line.split("line ")[1].split(",")[0] if "line " in line else "?"
        name = Path(path).name
        if name == "__init__.py":  # a package: keep its folder so the file is findable
            name = f"{Path(path).parent.name}/{name}"
        return f"{name}, line {lineno}"
    return ""


def _exc_text(e: BaseException) -> str:
    where = _plugin_frame(traceback.format_exc())
    text = f"{e.__class__.__name__}: {e}" if not isinstance(e, ConformanceError) else str(e)
    return text + (f" ({where})" if where and not isinstance(e, ConformanceError) else "")


def format_report(name: str, results: list[CheckResult]) -> str:
    lines = [f"conformance checks for '{name}'"]
    current = None
    for r in results:
        if r.model != current:
            current = r.model
            if r.model:
                lines.append(f"model {r.model}")
        lines.append(("  " if r.model else "") + r.line())
    counts = {s: sum(1 for r in results if r.status == s) for s in (PASS, WARN, SKIP, FAIL)}
    verdict = "FAILED" if counts[FAIL] else "passed"
    lines.append(f"{verdict}: {counts[PASS]} passed, {counts[WARN]} passed with notes, "
                 f"{counts[SKIP]} skipped, {counts[FAIL]} failed")
    return "\n".join(lines)
