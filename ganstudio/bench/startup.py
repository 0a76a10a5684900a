"""Studio window start-up time, measured in a fresh process.

``ganstudio gui`` run with ``GANSTUDIO_STARTUP_PROBE=1`` prints
``startup_seconds=<float>`` (process start to the window shown, as the studio
measures it) and quits. The wall time of the whole child process (interpreter
start included) is reported next to it.
"""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from typing import Any

_PATTERN = re.compile(r"startup_seconds=([0-9.eE+-]+)")


def _available(module: str) -> bool:
    """Whether ``module`` can be imported here (a broken install counts as absent)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def measure_startup(repeats: int = 1, timeout: float = 60.0,
                    command: list[str] | None = None) -> dict[str, Any]:
    """Best of ``repeats`` runs; ``{"skipped": reason}`` when the studio cannot start here.

    ``command`` replaces ``python -m ganstudio gui`` (tests).
    """
    if command is None and not _available("PySide6"):
        return {"skipped": "PySide6 is not installed (the studio cannot start here)"}
    env = dict(os.environ)
    env["GANSTUDIO_STARTUP_PROBE"] = "1"
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    reported: list[float] = []
    walls: list[float] = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(command or [sys.executable, "-m", "ganstudio", "gui"], env=env,
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"skipped": f"the studio did not quit within {timeout:.0f} s with "
                               "GANSTUDIO_STARTUP_PROBE=1 (probe not implemented?)"}
        walls.append(time.perf_counter() - t0)
        match = _PATTERN.search(proc.stdout + "\n" + proc.stderr)
        if match is None:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
            return {"skipped": f"the studio printed no startup_seconds= line "
                               f"(exit code {proc.returncode}; {tail[0][:200]})"}
        reported.append(float(match.group(1)))
    return {"startup_seconds": min(reported), "process_seconds": min(walls),
            "runs": len(reported), "platform": env["QT_QPA_PLATFORM"]}
