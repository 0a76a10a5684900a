"""What the ``ganstudio_studio_panels`` hook returns (Qt-free, so plugins can
declare panels without importing Qt until the studio builds them)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class PanelSpec:
    """A studio tab offered by a plugin.

    id:      stable identifier (e.g. ``"explore"``).
    title:   the tab's title.
    factory: ``factory(studio) -> QWidget``, called in the GUI thread.
    order:   tabs are sorted by order, then title (Training 0, Runs 10).
    """

    id: str
    title: str
    factory: Callable[[Any], Any]
    order: int = 50
