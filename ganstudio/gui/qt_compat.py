"""A guard against a PySide6 binding defect seen with PySide6 6.12 on Python 3.11.

There, every call of a Qt method that returns ``void`` releases one reference
to ``None`` that it never took (harmless on Python 3.12+, where ``None`` is
immortal). A window that paints for a few minutes drains None's reference
count to zero and the interpreter aborts with "none_dealloc: deallocating
None". :func:`guard_none_refcount` measures whether the installed binding has
the defect and, only then, gives ``None`` a reserve of references large enough
to outlive any session. On a correct binding it does nothing.
"""
from __future__ import annotations

import sys

_RESERVE = 1 << 40
_applied = False


def binding_leaks_none(calls: int = 64) -> bool:
    """True when a void Qt call drops a reference to None."""
    from PySide6.QtCore import QPoint
    p = QPoint()
    before = sys.getrefcount(None)
    for _ in range(calls):
        p.setX(1)
    return sys.getrefcount(None) < before - calls // 2


def guard_none_refcount() -> bool:
    """Apply the reserve once if the binding needs it; returns True when applied."""
    global _applied
    if _applied or sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return _applied
    if not binding_leaks_none():
        return False
    import ctypes
    refcnt = ctypes.c_ssize_t.from_address(id(None))  # ob_refcnt is the first field
    refcnt.value += _RESERVE
    _applied = True
    return True
