"""What the kit trains on: a few generated images, and settings that make a model tiny
(the smallest resolution, a batch of 4, then what the model declares in
``ModelSpec.test_settings``)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .results import _WEIGHT_WORDS, KIT_BATCH, KIT_IMAGES, TEST_SETTINGS_ATTR

def tiny_images(n: int = KIT_IMAGES, channels: int = 3, size: int = 16, seed: int = 0):
    """``n`` small uint8 images (N, C, H, W): soft colour blobs on gradients."""
    import torch

    g = torch.Generator().manual_seed(seed)
    ys = torch.linspace(-1, 1, size).view(1, size, 1)
    xs = torch.linspace(-1, 1, size).view(1, 1, size)
    out = []
    for _ in range(n):
        cx, cy = (torch.rand(2, generator=g) * 1.2 - 0.6).tolist()
        radius = 0.3 + 0.4 * float(torch.rand(1, generator=g))
        blob = torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / radius ** 2)
        colour = torch.rand(channels, 1, 1, generator=g)
        background = 0.3 * (xs + 1) / 2 * torch.rand(channels, 1, 1, generator=g)
        img = (background + colour * blob).clamp(0, 1)
        out.append((img * 255).round().to(torch.uint8))
    return torch.stack(out)


def _smallest_resolution(field: Any) -> int | None:
    if field is None:
        return None
    if field.type == "choice":
        numbers = [c for c in field.choices if isinstance(c, int) and not isinstance(c, bool)]
        return min(numbers) if numbers else None
    if field.type == "int":
        lo = int(field.min) if field.min is not None else 8
        hi = int(field.max) if field.max is not None else 16
        return min(max(16, lo), hi)
    return None


def _clamp(field: Any, value: int) -> int:
    if field.min is not None:
        value = max(value, int(math.ceil(field.min)))
    if field.max is not None:
        value = min(value, int(field.max))
    return value


def _plugin_settings(module: Any, model_id: str) -> dict:
    table = getattr(module, TEST_SETTINGS_ATTR, None) if module is not None else None
    if isinstance(table, dict) and isinstance(table.get(model_id), dict):
        return dict(table[model_id])
    return {}


def _looks_like_weights(field: Any) -> bool:
    text = field.name.lower()
    return any(word in text for word in _WEIGHT_WORDS)


def tiny_overrides(spec: Any, *, module: Any = None, workdir: str | Path | None = None,
                   overrides: dict | None = None) -> dict:
    """Setting overrides that make a model small enough for the kit.

    Folder-trained models: the smallest ``resolution`` and a batch of 4 (the
    engine's own settings). Every empty ``path`` setting (except ones named like
    weights) gets a generated 16 px image in ``workdir``. Then what the model
    declares in ``ModelSpec.test_settings`` (e.g. small network widths: the kit
    never guesses them from setting names), the plugin's older
    ``GANSTUDIO_TEST_SETTINGS`` for this model, then ``overrides``.
    """
    from ganstudio.core.model import FOLDER_KINDS

    cfg: dict[str, Any] = {}
    if spec.kind in FOLDER_KINDS:
        res = _smallest_resolution(spec.field("resolution"))
        if res is not None:
            cfg["resolution"] = res
        bs = spec.field("batch_size")
        if bs is not None and bs.type == "int":
            cfg["batch_size"] = _clamp(bs, KIT_BATCH)
    if workdir is not None:
        from PIL import Image

        folder = Path(workdir) / "inputs"
        for i, f in enumerate(spec.schema):
            if f.type == "path" and not f.default and not _looks_like_weights(f):
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / f"{f.name}.png"
                arr = tiny_images(1, 3, 16, seed=100 + i)[0].permute(1, 2, 0).numpy()
                Image.fromarray(arr).save(path)
                cfg[f.name] = str(path)
    cfg.update(dict(getattr(spec, "test_settings", None) or {}))
    cfg.update(_plugin_settings(module, spec.id))
    cfg.update(overrides or {})
    return cfg
