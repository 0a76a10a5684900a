"""Human-readable numbers shared by the CLI and the studio."""
from __future__ import annotations

import math


def format_duration(seconds: float) -> str:
    """``mm:ss`` under an hour, ``h:mm:ss`` above; ``--:--`` when unknown (inf, NaN, < 0)."""
    if not math.isfinite(seconds) or seconds < 0:
        return "--:--"
    h, rem = divmod(int(seconds), 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"
