"""Memorisation check: does the model make new images, or copies of its training images?

For each generated sample the nearest training image is found, in one of two
offline feature spaces:

* ``pixels``: the images downscaled to 16x16 (area average) - catches copies,
  also mirrored-size or slightly shifted ones poorly, but needs nothing;
* ``random``: the fixed random convolutional features of
  :class:`~ganstudio.core.quality.RandomFeatures` (the KID features).

The yardstick is how close training images are to *each other*: the 5th
percentile of the distances from each training image to its nearest other
training image. A sample closer to a training image than that is counted as
"closer than training images are to each other". A model that learned gives few
or none; a model that copies gives many (the test plants a training image among
samples and expects it caught).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from .errors import DatasetError, UserError
from .images import make_grid

FEATURES = ("pixels", "random")
PIXEL_SIZE = 16
#: Training images used to set the yardstick (each against all others); more costs O(N^2).
MAX_REFERENCE = 2000


@dataclass
class NearestResult:
    distances: torch.Tensor      # (S,) distance of each sample to its nearest training image
    nearest: torch.Tensor        # (S,) index of that training image
    threshold: float             # the yardstick (training-to-training percentile)
    closer: int                  # samples closer than the yardstick
    feature: str
    n_train: int

    @property
    def n_samples(self) -> int:
        return int(self.distances.shape[0])

    def flagged(self) -> list[int]:
        """Indices of samples closer than the yardstick, nearest first."""
        idx = (self.distances < self.threshold).nonzero().flatten()
        return [int(i) for i in idx[self.distances[idx].argsort()]]

    def to_dict(self) -> dict:
        return {"samples": self.n_samples, "closer": self.closer,
                "threshold": round(self.threshold, 6), "feature": self.feature,
                "training_images": self.n_train,
                "median_distance": round(float(self.distances.median()), 6)}


def embed(images: torch.Tensor, feature: str = "pixels", device: str | torch.device = "cpu",
          batch: int = 256) -> torch.Tensor:
    """(N, C, H, W) in [-1, 1] -> (N, D) float32 features for nearest-neighbour search."""
    if feature not in FEATURES:
        raise UserError(f"unknown feature '{feature}' (use {' or '.join(FEATURES)})")
    if feature == "random":
        from .quality import RandomFeatures
        return RandomFeatures(device).features(images, batch=batch).cpu()
    out = []
    for i in range(0, images.shape[0], batch):
        x = images[i:i + batch].float()
        x = F.adaptive_avg_pool2d(x, (PIXEL_SIZE, PIXEL_SIZE))
        out.append(((x + 1) / 2).flatten(1))
    return torch.cat(out)


def _nearest(queries: torch.Tensor, refs: torch.Tensor, exclude_self_offset: int | None = None,
             chunk: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query row, (distance, index) of the nearest row of ``refs``. With
    ``exclude_self_offset`` query i is refs[offset + i] and is not its own neighbour."""
    dists, idxs = [], []
    for start in range(0, queries.shape[0], chunk):
        q = queries[start:start + chunk]
        d = torch.cdist(q.double(), refs.double())
        if exclude_self_offset is not None:
            rows = torch.arange(q.shape[0])
            d[rows, exclude_self_offset + start + rows] = float("inf")
        m = d.min(dim=1)
        dists.append(m.values.float())
        idxs.append(m.indices)
    return torch.cat(dists), torch.cat(idxs)


def yardstick(train_feats: torch.Tensor, quantile: float = 0.05, seed: int = 0) -> float:
    """The ``quantile`` of training-to-nearest-other-training distances."""
    n = train_feats.shape[0]
    if n < 2:
        raise DatasetError("the memorisation check needs at least two training images")
    if n > MAX_REFERENCE:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:MAX_REFERENCE]
        feats = torch.cat([train_feats[order], train_feats[_complement(n, order)]])
    else:
        feats = train_feats
    q = feats[:min(n, MAX_REFERENCE)]
    d, _ = _nearest(q, feats, exclude_self_offset=0)
    return float(torch.quantile(d.double(), quantile))


def _complement(n: int, chosen: torch.Tensor) -> torch.Tensor:
    mask = torch.ones(n, dtype=torch.bool)
    mask[chosen] = False
    return mask.nonzero().flatten()


def nearest_check(samples: torch.Tensor, train: torch.Tensor, feature: str = "pixels",
                  quantile: float = 0.05, device: str | torch.device = "cpu") -> NearestResult:
    """Compare ``samples`` (S, C, H, W) in [-1, 1] with ``train`` (N, C, H', W') in [-1, 1]."""
    if samples.shape[1] != train.shape[1]:
        raise UserError(f"samples have {samples.shape[1]} channels, training images "
                        f"{train.shape[1]}")
    if samples.shape[-2:] != train.shape[-2:]:
        samples = F.interpolate(samples.float(), size=tuple(train.shape[-2:]), mode="bilinear",
                                align_corners=False, antialias=True)
    tf = embed(train, feature, device)
    sf = embed(samples, feature, device)
    if feature == "random":   # one scale for both sets, so no feature dominates by its range
        scale = tf.std(0, keepdim=True).clamp_min(1e-6)
        tf, sf = tf / scale, sf / scale
    threshold = yardstick(tf, quantile)
    dist, idx = _nearest(sf, tf)
    closer = int((dist < threshold).sum())
    return NearestResult(dist, idx, threshold, closer, feature, int(train.shape[0]))


def pairs_grid(samples: torch.Tensor, train: torch.Tensor, result: NearestResult,
               n: int = 16) -> np.ndarray:
    """A uint8 grid of (sample, nearest training image) pairs, the closest pairs first,
    two pairs per row (sample on the left of its neighbour)."""
    order = result.distances.argsort()[:n]
    if samples.shape[-2:] != train.shape[-2:]:
        samples = F.interpolate(samples.float(), size=tuple(train.shape[-2:]), mode="nearest")
    cells = []
    for i in order:
        cells += [samples[int(i)], train[int(result.nearest[int(i)])]]
    return make_grid(torch.stack(cells), nrow=4 if len(cells) >= 4 else len(cells), min_cell=64)


# -- on a run -------------------------------------------------------------------------------------
def training_images(run_dir: str | Path, progress: Callable[[int, int], None] | None = None
                    ) -> torch.Tensor:
    """The run's training images as the engine prepared them, (N, C, R, R) in [-1, 1]."""
    from .data import load_dataset
    from .runs import RunFolder
    info = RunFolder(run_dir).read_info()
    folder = (info.get("dataset") or {}).get("folder")
    config = info.get("config") or {}
    if not folder:
        raise DatasetError(f"run {run_dir} does not record its image folder")
    if not Path(folder).expanduser().is_dir():
        raise DatasetError(f"the training images of run {run_dir} are not found: "
                           f"{folder} is missing")
    images, _report = load_dataset(folder, int(config["resolution"]),
                                   int(config.get("channels", 3)), config.get("fit", "crop"),
                                   progress=progress)
    return images.float().div(127.5).sub(1)


def run_nearest_check(run_dir: str | Path, plugin_manager: Any, n: int = 256, *,
                      feature: str = "pixels", device: str = "cpu", seed: int = 0,
                      checkpoint: str | int | None = "last",
                      extra_samples: torch.Tensor | None = None) -> tuple[NearestResult,
                                                                          torch.Tensor,
                                                                          torch.Tensor]:
    """Draw ``n`` samples (seeds ``seed`` .. ``seed + n - 1``) from the run, compare them
    with its training images, note the result in the run (events.log and explore.json).
    ``extra_samples`` are appended to the samples (the test plants a training image).
    Returns (result, samples, training images)."""
    from .explore_state import update_state
    from .latents import load_explorer
    from .runs import RunFolder
    if n < 1:
        raise UserError("the memorisation check needs at least one sample")
    explorer = load_explorer(run_dir, plugin_manager, device, checkpoint)
    samples = explorer.seed_images(range(int(seed), int(seed) + int(n)))
    if extra_samples is not None:
        samples = torch.cat([samples, extra_samples.float()])
    train = training_images(run_dir)
    result = nearest_check(samples, train, feature, device=device)
    RunFolder(run_dir).log(
        f"memorisation check (step {explorer.step}, compared by "
        f"{'16x16 pixels' if feature == 'pixels' else feature + ' features'}): {result.closer} of "
        f"{result.n_samples} samples closer to a training image than training images are to "
        f"each other")
    update_state(run_dir, memorisation={**result.to_dict(), "step": explorer.step})
    return result, samples, train
