"""Human-readable numbers shared by the CLI and the studio."""
from __future__ import annotations

import math


def format_duration(seconds: float) -> str:
    """A duration that cannot be read as a clock time: ``45 s``, ``4 min 05 s``,
    ``13 h 05 min``, ``2 d 03 h``; ``--`` when unknown (inf, NaN, < 0)."""
    if not math.isfinite(seconds) or seconds < 0:
        return "--"
    total = int(round(seconds))
    if total < 60:
        return f"{total} s"
    minutes, s = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    hours, m = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {m:02d} min"
    days, h = divmod(hours, 24)
    return f"{days} d {h:02d} h"
