"""The best checkpoint: KID of each kept checkpoint against the run's training images.

Every checkpoint is scored on the same seeds (0 .. n-1) with the same feature
extractor as the engine's live KID (:mod:`ganstudio.core.quality`; the
download-free random features unless Inception weights are on disk and asked
for), so the figures compare. The lowest KID is the best checkpoint: it is
written to ``RUN/explore.json`` and protected from checkpoint rotation, and
``--checkpoint best`` picks it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .errors import CheckpointError, UserError


@dataclass
class CheckpointScores:
    kid: dict[int, float]                   # step -> KID
    best_step: int | None
    features: str
    skipped: dict[int, str] = field(default_factory=dict)   # step -> why it was not scored
    cancelled: bool = False


def score_checkpoints(run_dir: str | Path, plugin_manager: Any, *, n_samples: int = 256,
                      features: str = "random", device: str = "cpu", max_real: int = 1000,
                      progress: Callable[[int, int, int], None] | None = None,
                      cancelled: Callable[[], bool] | None = None,
                      note: Callable[[str], None] | None = None) -> CheckpointScores:
    """KID for each checkpoint of the run; the best is recorded in the run.

    ``progress(done, total, step)`` after each checkpoint; ``cancelled()`` polled between
    checkpoints (what was measured until then is kept and recorded).
    """
    from .checkpoints import list_checkpoints
    from .explore_state import read_state, write_state
    from .latents import load_explorer
    from .memorisation import training_images
    from .quality import kid, make_extractor
    from .runs import RunFolder

    if n_samples < 2:
        raise UserError("KID needs at least 2 samples per checkpoint")
    run = RunFolder(run_dir)
    run.read_info()
    paths = list_checkpoints(run.checkpoints_dir)
    if not paths:
        raise CheckpointError(f"run {run.path} has no checkpoint yet")
    train = training_images(run_dir)
    if train.shape[0] > max_real:
        pick = torch.randperm(train.shape[0], generator=torch.Generator().manual_seed(0))
        train = train[pick[:max_real]]
    extractor = make_extractor(features, device, on_note=note)
    real = extractor.features(train)
    scores: dict[int, float] = {}
    skipped: dict[int, str] = {}
    was_cancelled = False
    for i, path in enumerate(paths):
        if cancelled is not None and cancelled():
            was_cancelled = True
            break
        step = int(path.name[5:-3])
        try:
            explorer = load_explorer(run_dir, plugin_manager, device, checkpoint=step)
        except CheckpointError as e:
            skipped[step] = str(e)
            continue
        with torch.no_grad():
            fake = extractor.features(explorer.seed_images(range(n_samples)))
        scores[step] = round(kid(real, fake, subsets=10, subset_size=min(1000, n_samples)), 6)
        if progress is not None:
            progress(i + 1, len(paths), step)
    best = min(scores, key=scores.get) if scores else None
    state = read_state(run_dir)
    state["kid"].update({str(k): v for k, v in scores.items()})
    # forget scores of checkpoints rotation has removed since
    kept = {int(p.name[5:-3]) for p in paths}
    state["kid"] = {k: v for k, v in state["kid"].items() if int(k) in kept}
    state["kid_features"] = extractor.name
    if state["kid"]:
        state["best_step"] = int(min(state["kid"], key=state["kid"].get))
    write_state(run_dir, state)
    return CheckpointScores(scores, best if not state["kid"] else state["best_step"],
                            extractor.name, skipped, was_cancelled)
