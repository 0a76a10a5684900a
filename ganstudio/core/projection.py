"""Projection: the latent whose image best reproduces a given picture.

The search optimises z directly (Adam, cosine-decayed step size) from several
starts: many random latents are scored first and the best few are refined
together as one batch (the generator runs in eval mode, so the starts do not
influence each other). The loss is

* a pixel term (mean squared error),
* a multi-scale structural term (1 - SSIM at full, half and quarter size, with a
  3x3 window; it rewards matching edges and local contrast that pixel error blurs),
* where the model declares ``d_features``, the distance between the
  discriminator's features of the image and of the target (a learned perceptual
  term that needs no downloaded network).

The last 30 % of the steps polish the pixel match (pixel term and a lighter
structural term, features set aside): the features find the right region of the
latent space, the polish brings the picture's colours and layout closer.

Gaussian latents get a light pull toward the typical norm (|z|^2 ~ dim) so the
result stays a latent the generator was trained on; uniform latents are clamped
to [-1, 1]. The error reported is the pixel mean squared error on a 0..1 scale.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .errors import UserError
from .latents import GAUSSIAN, Explorer, random_latents

#: Fraction of the steps at the end that refine the pixel match (features set aside).
POLISH = 0.3


@dataclass
class ProjectionResult:
    z: torch.Tensor             # (1, dim) on the CPU
    image: torch.Tensor         # (1, C, H, W) in [-1, 1] on the CPU
    error: float                # pixel MSE on a 0..1 scale
    loss: float
    steps: int
    starts: int
    history: list[float] = field(default_factory=list)   # best error every few steps
    cancelled: bool = False


def load_picture(path: str | Path, channels: int, size: int) -> torch.Tensor:
    """A picture as (1, C, size, size) in [-1, 1] (centre-cropped to a square, resized);
    UserError naming the file and the reason when it cannot be read."""
    from .data import prepare_image
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"picture not found: {path}")
    arr, reason, _notes = prepare_image(path, int(size), int(channels), "crop")
    if arr is None:
        raise UserError(f"cannot read picture {path}: {reason}")
    return torch.from_numpy(np.ascontiguousarray(arr)).float().div(127.5).sub(1).unsqueeze(0)


# -- the loss -------------------------------------------------------------------------------------
def _ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM with a 3x3 mean window (inputs in [0, 1])."""
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    pool = lambda t: F.avg_pool2d(t, 3, 1, 1, count_include_pad=False)  # noqa: E731
    mx, my = pool(x), pool(y)
    vx = pool(x * x) - mx * mx
    vy = pool(y * y) - my * my
    cov = pool(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def structural_loss(x: torch.Tensor, y: torch.Tensor, scales: int = 3) -> torch.Tensor:
    """Mean of (1 - SSIM) over up to ``scales`` scales (halving while the side is >= 8)."""
    x, y = (x + 1) / 2, (y + 1) / 2
    terms = []
    for i in range(scales):
        if i and min(x.shape[-2:]) < 8:
            break
        if i:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        terms.append(1 - _ssim(x, y))
    return torch.stack(terms).mean(0)


def pixel_error(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image mean squared error on a 0..1 scale (inputs in [-1, 1])."""
    return ((x - y) / 2).pow(2).flatten(1).mean(1)


class ProjectionLoss:
    """loss(images) -> per-image loss against one target (1, C, H, W)."""

    def __init__(self, target: torch.Tensor, features: Callable | None = None, *,
                 w_pixel: float = 1.0, w_struct: float = 0.5, w_features: float = 0.25):
        self.target = target
        self.features = features
        self.w = (w_pixel, w_struct, w_features)
        self.target_feats = None
        if features is not None:
            with torch.no_grad():
                self.target_feats = [f.detach() for f in features(target)]

    def __call__(self, images: torch.Tensor, polish: bool = False) -> torch.Tensor:
        """``polish``: the pixel term with a light structural term only (the last phase)."""
        t = self.target.expand_as(images)
        w_struct = self.w[1] * (0.2 if polish else 1.0)
        loss = self.w[0] * pixel_error(images, t) + w_struct * structural_loss(images, t)
        if self.features is not None and not polish:
            total = 0
            for f, tf in zip(self.features(images), self.target_feats):
                diff = (f.float() - tf.float().expand_as(f)).pow(2).flatten(1).mean(1)
                total = total + diff / (tf.float().pow(2).mean() + 1e-8)
            loss = loss + self.w[2] * total / max(len(self.target_feats), 1)
        return loss


# -- the search -----------------------------------------------------------------------------------
def project(explorer: Explorer, target: torch.Tensor, *, steps: int = 200, starts: int = 4,
            candidates: int = 128, lr: float = 0.08, use_features: bool = True, seed: int = 0,
            progress: Callable[[int, int, torch.Tensor, float], None] | None = None,
            cancelled: Callable[[], bool] | None = None, report_every: int = 10
            ) -> ProjectionResult:
    """Search the latent that reproduces ``target`` (1, C, H, W) in [-1, 1].

    ``progress(step, steps, best_image, best_error)`` is called every
    ``report_every`` steps (from the calling thread); ``cancelled()`` is polled
    each step and ends the search early with the best result so far.
    """
    if steps < 1 or starts < 1:
        raise UserError("projection needs at least one step and one start")
    dev = explorer.device
    net = explorer.network()
    params = list(net.parameters())
    saved_grad = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    target = target.to(dev).float()
    out_shape = tuple(target.shape[-3:])
    feats = None
    spec = explorer.spec
    if use_features and spec.has("d_features"):
        feats = explorer.model.discriminator_features
    loss_fn = ProjectionLoss(target, feats)
    gaussian = explorer.distribution == GAUSSIAN
    dim = explorer.dim
    try:
        # (1) score many random latents, keep the best few as starts
        cand = random_latents(max(candidates, starts), dim, explorer.distribution, seed).to(dev)
        with torch.no_grad():
            scores = torch.cat([loss_fn(_check(net(cand[i:i + 32]), out_shape))
                                for i in range(0, cand.shape[0], 32)])
        z = cand[scores.argsort()[:starts]].clone().requires_grad_(True)
        # (2) refine them together
        opt = torch.optim.Adam([z], lr=lr, betas=(0.9, 0.99))
        polish_from = int(steps * (1 - POLISH))
        best_loss = torch.full((starts,), float("inf"), device=dev)
        best_z = z.detach().clone()
        history: list[float] = []
        was_cancelled = False
        done = 0
        for i in range(steps):
            if cancelled is not None and cancelled():
                was_cancelled = True
                break
            for g in opt.param_groups:
                g["lr"] = lr * (0.5 + 0.5 * math.cos(math.pi * i / steps))
            images = net(z)
            per = loss_fn(images, polish=i >= polish_from)
            reg = (z.pow(2).mean(1) - 1).pow(2) * 0.01 if gaussian else torch.zeros_like(per)
            (grad,) = torch.autograd.grad((per + reg).sum(), [z])
            if i == polish_from:   # another loss from here: best-so-far starts afresh
                best_loss.fill_(float("inf"))
            with torch.no_grad():
                better = per.detach() < best_loss
                best_loss = torch.where(better, per.detach(), best_loss)
                best_z[better] = z.detach()[better]
            opt.zero_grad(set_to_none=True)
            z.grad = grad
            opt.step()
            if not gaussian:
                with torch.no_grad():
                    z.clamp_(-1, 1)
            done = i + 1
            if progress is not None and (done % report_every == 0 or done == steps):
                k = int(best_loss.argmin())
                with torch.no_grad():
                    img = net(best_z[k:k + 1]).float()
                err = float(pixel_error(img, target)[0])
                history.append(err)
                progress(done, steps, img.cpu(), err)
        # (3) the best start, scored once more as it is
        with torch.no_grad():
            final = torch.cat([loss_fn(net(best_z[i:i + 1]), polish=done > polish_from)
                               for i in range(starts)])
            k = int(final.argmin())
            img = net(best_z[k:k + 1]).float()
            err = float(pixel_error(img, target)[0])
        return ProjectionResult(best_z[k:k + 1].detach().cpu(), img.cpu(), err,
                                float(final[k]), done, starts, history, was_cancelled)
    finally:
        for p, flag in zip(params, saved_grad):
            p.requires_grad_(flag)


def _check(images: torch.Tensor, shape: tuple) -> torch.Tensor:
    if tuple(images.shape[-3:]) != shape:
        raise UserError(f"the generator makes {tuple(images.shape[-3:])} images but the picture "
                        f"was prepared as {shape}")
    return images


def random_baseline(explorer: Explorer, target: torch.Tensor, n: int = 256, seed: int = 1
                    ) -> float:
    """The lowest pixel error (0..1 scale) of ``n`` random latents: what projection must beat."""
    z = random_latents(n, explorer.dim, explorer.distribution, seed)
    images = explorer.images(z)
    return float(pixel_error(images, target.cpu().expand_as(images)).min())
