"""Sample quality measures that work offline: KID and FID.

Both compare the distribution of *features* of generated images with that of
real images:

- FID (Heusel et al., "GANs Trained by a Two Time-Scale Update Rule
  Converge to a Local Nash Equilibrium", 2017): the Fréchet distance between
  Gaussians fitted to the two feature sets. Biased for small sample counts.
- KID (Bińkowski et al., "Demystifying MMD GANs", 2018): the unbiased
  squared MMD with the cubic polynomial kernel ``(x.y / d + 1)^3``, averaged
  over subsets. Unbiased, so it is meaningful with a few hundred samples -
  the better figure for small datasets. 0 means "indistinguishable".

Feature extractors:

- ``inception``: torchvision's Inception-v3 (ImageNet weights), 2048-d pool
  features. The weights are never downloaded here: they are read from the
  file named by ``$GANSTUDIO_INCEPTION_WEIGHTS`` or from torch's own cache
  (``~/.cache/torch/hub/checkpoints/inception_v3_google-*.pth``). Values are
  close to, but not identical with, the TensorFlow-Inception FID of papers.
- ``random`` (the fallback, needs no file): a fixed random convolutional
  network (weights drawn from NumPy's legacy ``RandomState(0)``, identical on
  every machine), with mean and standard-deviation pooling at three scales,
  768 features. Random conv features are known to track sample quality and
  diversity reasonably (Naeem et al., "Reliable Fidelity and Diversity
  Metrics for Generative Models", 2020, use random embeddings for the same
  purpose). Figures from different extractors are not comparable; the
  metric names say which one was used (``kid`` / ``fid`` for ``random``,
  ``kid_inception`` / ``fid_inception`` for Inception).
"""
from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import UserError

INCEPTION_ENV = "GANSTUDIO_INCEPTION_WEIGHTS"


class FeatureExtractor:
    """``features(images)``: (N, C, H, W) in [-1, 1] -> (N, D) float32 features."""

    name = "base"
    suffix = ""

    def features(self, images: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


def _to_rgb(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x.expand(-1, 3, -1, -1)
    if x.shape[1] != 3:
        raise ValueError(f"expected 1 or 3 channels, got {x.shape[1]}")
    return x


class RandomFeatures(FeatureExtractor):
    """A fixed random conv net: the download-free fallback (see the module doc)."""

    name = "random"
    suffix = ""
    SIZE = 64
    WIDTHS = (3, 64, 128, 256)

    def __init__(self, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        rng = np.random.RandomState(0)
        self.weights: list[torch.Tensor] = []
        for cin, cout in zip(self.WIDTHS[:-1], self.WIDTHS[1:]):
            std = np.sqrt(2.0 / (cin * 9))                   # He scaling keeps activations O(1)
            w = (rng.standard_normal((cout, cin, 3, 3)) * std).astype(np.float32)
            self.weights.append(torch.from_numpy(w).to(self.device))

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
        out = []
        for i in range(0, images.shape[0], batch):
            x = _to_rgb(images[i:i + batch].to(self.device).float())
            x = F.interpolate(x, size=(self.SIZE, self.SIZE), mode="bilinear",
                              align_corners=False, antialias=True)
            pooled = []
            for w in self.weights:
                x = F.leaky_relu(F.conv2d(x, w, stride=2, padding=1), 0.2)
                pooled += [x.mean(dim=(2, 3)), x.std(dim=(2, 3))]
            out.append(torch.cat(pooled[2:], dim=1))              # the two deeper scales
        return torch.cat(out).float()


class InceptionFeatures(FeatureExtractor):
    """torchvision Inception-v3 pool features from a local weights file."""

    name = "inception"
    suffix = "_inception"

    def __init__(self, weights_path: str | os.PathLike, device: torch.device | str = "cpu"):
        path = Path(weights_path)
        if not path.is_file():
            raise UserError(f"Inception weights not found: {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise UserError(f"cannot read Inception weights {path}: {e}") from None
        try:
            from torchvision.models import inception_v3   # slow import: only when needed
        except ImportError as e:  # pragma: no cover - torchvision is a dependency
            raise UserError(f"Inception features need torchvision ({e})") from None
        # Google's weights expect inputs in [-1, 1] (torchvision's transform_input
        # maps ImageNet-normalised inputs there); our images already are.
        net = inception_v3(weights=None, aux_logits=True, init_weights=False,
                           transform_input=False)
        try:
            net.load_state_dict(state)
        except RuntimeError as e:
            raise UserError(f"{path} does not hold torchvision Inception-v3 weights "
                            f"({str(e).splitlines()[0]})") from None
        net.fc = nn.Identity()
        net.aux_logits = False
        net.AuxLogits = None
        self.net = net.eval().to(device)
        self.device = torch.device(device)

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
        out = []
        for i in range(0, images.shape[0], batch):
            x = _to_rgb(images[i:i + batch].to(self.device).float())
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            out.append(self.net(x).float())
        return torch.cat(out)


def find_inception_weights() -> Path | None:
    """The local Inception-v3 weights file, if the user has one (never downloads)."""
    env = os.environ.get(INCEPTION_ENV)
    if env:
        return Path(env).expanduser()
    hub = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch")
    found = sorted(glob.glob(os.path.join(hub, "hub", "checkpoints", "inception_v3_google-*.pth")))
    return Path(found[0]) if found else None


def make_extractor(kind: str = "auto", device: torch.device | str = "cpu", *,
                   on_note: Callable[[str], None] | None = None) -> FeatureExtractor:
    """``auto``: Inception when its weights are on disk, else the random fallback (with a note).

    ``inception`` insists on Inception and raises a UserError naming what is missing.
    """
    if kind == "random":
        return RandomFeatures(device)
    if kind not in ("auto", "inception"):
        raise UserError(f"unknown feature extractor '{kind}' (use auto, inception or random)")
    path = find_inception_weights()
    if path is None:
        msg = ("Inception-v3 weights not found (set $GANSTUDIO_INCEPTION_WEIGHTS to the "
               "torchvision file inception_v3_google-*.pth, or place it in "
               "~/.cache/torch/hub/checkpoints/)")
        if kind == "inception":
            raise UserError(msg)
        if on_note:
            on_note(msg + "; KID/FID use the download-free random-feature network instead")
        return RandomFeatures(device)
    try:
        return InceptionFeatures(path, device)
    except UserError as e:
        if kind == "inception":
            raise
        if on_note:
            on_note(f"{e}; KID/FID use the download-free random-feature network instead")
        return RandomFeatures(device)


# -- the statistics -------------------------------------------------------------------------------
def kid(real: torch.Tensor, fake: torch.Tensor, *, subsets: int = 10, subset_size: int = 1000,
        seed: int = 0) -> float:
    """Kernel Inception Distance: unbiased MMD^2, cubic polynomial kernel, mean over subsets."""
    real, fake = real.double(), fake.double()
    d = real.shape[1]
    m = min(subset_size, real.shape[0], fake.shape[0])
    if m < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(subsets):
        x = real[torch.randperm(real.shape[0], generator=g)[:m]]
        y = fake[torch.randperm(fake.shape[0], generator=g)[:m]]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        sum_xx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
        sum_yy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
        total += float(sum_xx + sum_yy - 2 * kxy.mean())
    return total / subsets


def fid(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to the two feature sets."""
    real, fake = real.double(), fake.double()
    mu1, mu2 = real.mean(0), fake.mean(0)
    c1, c2 = torch.cov(real.T), torch.cov(fake.T)
    # tr sqrt(C1 C2) = sum sqrt(eig(S C2 S)) with S = C1^(1/2): symmetric, so eigvalsh is safe
    w, v = torch.linalg.eigh(c1)
    s = (v * w.clamp(min=0).sqrt()) @ v.T
    eig = torch.linalg.eigvalsh(s @ c2 @ s).clamp(min=0)
    value = float((mu1 - mu2).pow(2).sum() + c1.trace() + c2.trace() - 2 * eig.sqrt().sum())
    return max(value, 0.0)


def mean_pairwise_distance(feats: torch.Tensor) -> float:
    """Average L2 distance between distinct rows: a simple diversity figure."""
    n = feats.shape[0]
    if n < 2:
        return 0.0
    d = torch.cdist(feats.double(), feats.double())
    return float(d.sum() / (n * (n - 1)))


class QualityMeter:
    """KID / FID of a model's samples against a fixed set of real images.

    Real features are computed once. ``measure(sample_fn)`` draws samples
    from fixed latents (``sample_fn(n) -> images in [-1, 1]``) in chunks.
    """

    def __init__(self, real_images: torch.Tensor, extractor: FeatureExtractor, *,
                 n_samples: int = 500, with_fid: bool = True):
        self.extractor = extractor
        self.n_samples = int(n_samples)
        self.with_fid = with_fid
        self.real_features = extractor.features(real_images)

    def measure(self, sample_fn: Callable[[int], torch.Tensor]) -> dict[str, float]:
        fake = sample_fn(self.n_samples)
        feats = self.extractor.features(fake)
        suffix = self.extractor.suffix
        out = {f"kid{suffix}": round(kid(self.real_features, feats), 6)}
        if self.with_fid:
            out[f"fid{suffix}"] = round(fid(self.real_features, feats), 4)
        return out
