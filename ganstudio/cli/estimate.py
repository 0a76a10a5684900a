"""The run-time estimate ``ganstudio train`` prints before training.

Core measures (``ganstudio.core.estimate``: real steps on this device, scaled to
the budget); this module words it for the terminal and, when the run is long,
offers the lighter runs as the exact options that ask for them.
"""
from __future__ import annotations

import shlex
import sys
from typing import Any, TextIO

#: A run longer than this gets one line of faster alternatives.
LONG_RUN_S = 3600.0


def option_words(changes: dict[str, Any]) -> str:
    """``{"resolution": 32, "steps": 2500}`` -> ``--set resolution=32 --steps 2500``."""
    words = []
    for key, value in changes.items():
        if key == "steps":
            continue
        words += ["--set", f"{key}={value}"]
    if "steps" in changes:
        words += ["--steps", str(int(changes["steps"]))]
    return shlex.join(words)


def estimate_lines(estimate: Any, alternatives: list[Any], *, remaining: int | None = None,
                   long_s: float = LONG_RUN_S) -> list[str]:
    """The lines to print for a measured ``RunEstimate`` and its alternatives."""
    from ganstudio.core.units import format_duration
    steps = estimate.steps if remaining is None else remaining
    rate = estimate.images_per_second
    rate_text = f", {rate:,.1f} images/s" if rate == rate and rate > 0 else ""
    lines = [f"estimated time: about {format_duration(estimate.total_seconds)} for "
             f"{steps:,} steps on {estimate.device} ({estimate.precision}{rate_text}; "
             "measured now, a busy machine changes it)"]
    if estimate.total_seconds > long_s and alternatives:
        offers = [f"{option_words(a.changes)} (about {format_duration(a.total_seconds)})"
                  for a in alternatives]
        lines.append("faster on this device: " + "; or ".join(offers))
    return lines


def print_estimate(spec: Any, config: dict[str, Any], steps: int, *, device: str,
                   precision: str, start_step: int = 0,
                   out: TextIO | None = None, long_s: float = LONG_RUN_S) -> Any:
    """Measure the run's remaining steps on this device and print the estimate (and,
    for a long run, the faster alternatives). Returns the estimate, or None when the
    model has nothing to estimate or nothing is left to train."""
    from ganstudio.core.estimate import choice_target, faster_alternatives, measure
    from ganstudio.core.errors import UserError
    out = out or sys.stderr
    remaining = steps - start_step
    if remaining <= 0:
        return None
    # An estimate never stops a run: whatever goes wrong while measuring (out of memory,
    # a plugin error) happens again in the run itself, which reports it with its advice.
    try:
        est = measure(spec, config, remaining, device=device, precision=precision)
    except UserError:
        return None
    except Exception:  # noqa: BLE001
        print("no time estimate: measuring a few steps failed", file=out, flush=True)
        return None
    alts: list[Any] = []
    if est.total_seconds > long_s and start_step == 0:
        # Only what the user asked for goes into the options; the measured config holds
        # every default too.
        try:
            alts = faster_alternatives(spec, config, steps, choice_target(long_s), device=device,
                                       precision=precision, measured=est)
        except Exception:  # noqa: BLE001 - the options are a nicety; the run goes on
            alts = []
    for line in estimate_lines(est, alts, long_s=long_s):
        print(line, file=out, flush=True)
    return est
