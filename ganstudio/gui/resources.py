"""Where the studio finds its icons, style sheets and the bundled demo images."""
from __future__ import annotations

import os
from pathlib import Path

RESOURCES_ENV = "GANSTUDIO_RESOURCES"


def resources_dir() -> Path:
    env = os.environ.get(RESOURCES_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "resources"


def icon_path(name: str) -> Path:
    return resources_dir() / "icons" / f"{name}.svg"


def demo_dataset_dir() -> Path:
    return resources_dir() / "demo"


def theme_path(name: str) -> Path:
    return resources_dir() / "themes" / f"{name}.qss"
