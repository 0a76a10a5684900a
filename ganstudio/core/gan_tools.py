"""Shared tools that help any GAN train on small datasets.

Every piece here is independent of a particular architecture, runs on the
training device and (unless noted) never synchronises with the GPU:

- :class:`DiffAugment`: differentiable colour / translation / cutout
  augmentation applied to *both* real and generated images before D
  (Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training",
  2020). Optionally each op is applied per image with probability ``p``, and
  ``p`` can follow D's overfitting signal (:class:`AdaptiveStrength`, after
  Karras et al., "Training Generative Adversarial Networks with Limited Data",
  2020 - the ADA heuristic r_t = E[sign(D(real))]).
- :class:`EMA`: exponential moving average of the generator's weights, used
  for samples and exports (Yazici et al., "The Unusual Effectiveness of
  Averaging in GAN Training", 2019).
- Losses: non-saturating BCE (Goodfellow et al., 2014), hinge (Lim and Ye,
  2017; Miyato et al., 2018) and WGAN-GP (Gulrajani et al., 2017), with
  one-sided label smoothing (Salimans et al., 2016) for BCE.
- :func:`apply_spectral_norm` (Miyato et al., "Spectral Normalization for
  GANs", 2018).
- :class:`DPause`: skip D's update while its loss is below a threshold.
- :class:`InstanceNoise`: Gaussian noise on D's inputs, annealed to zero
  (Sønderby et al., 2016; Arjovsky and Bottou, 2017).
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import ConfigError

AUGMENT_OPS = ("color", "translation", "cutout")
LOSSES = ("bce", "hinge", "wgan-gp")


# -- differentiable augmentation --------------------------------------------------------------
def parse_augment_policy(policy: str) -> tuple[str, ...]:
    """``"color,translation,cutout"`` -> tuple of ops; ``"off"``/``"none"``/``""`` -> ()."""
    text = (policy or "").strip().lower()
    if text in ("", "off", "none", "false", "0"):
        return ()
    ops = tuple(p.strip() for p in text.replace("+", ",").split(",") if p.strip())
    for op in ops:
        if op not in AUGMENT_OPS:
            raise ConfigError(f"setting 'augment': unknown augmentation '{op}' "
                              f"(use a comma list of {', '.join(AUGMENT_OPS)}, or off)")
    return ops


def _per_sample(n: int, p: torch.Tensor | float | None, device: torch.device) -> torch.Tensor | None:
    """(n, 1, 1, 1) float mask of which images get an op, or None when p is 1."""
    if p is None:
        return None
    if isinstance(p, (int, float)):
        if p >= 1.0:
            return None
        p = torch.tensor(float(p), device=device)
    return (torch.rand(n, 1, 1, 1, device=device) < p).to(torch.float32)


def _blend(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return y if mask is None else x + (y - x) * mask.to(x.dtype)


def aug_color(x: torch.Tensor, p=None) -> torch.Tensor:
    """Random brightness, saturation (colour images) and contrast, per image."""
    n, c = x.shape[:2]
    dev = x.device
    y = x + (torch.rand(n, 1, 1, 1, device=dev, dtype=x.dtype) - 0.5)           # brightness
    if c > 1:
        mean = y.mean(dim=1, keepdim=True)
        y = (y - mean) * (torch.rand(n, 1, 1, 1, device=dev, dtype=x.dtype) * 2) + mean
    mean = y.mean(dim=(1, 2, 3), keepdim=True)
    y = (y - mean) * (torch.rand(n, 1, 1, 1, device=dev, dtype=x.dtype) + 0.5) + mean
    return _blend(x, y, _per_sample(n, p, dev))


def aug_translation(x: torch.Tensor, p=None, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its size, filling with zeros (gathers: differentiable)."""
    n, _c, h, w = x.shape
    dev = x.device
    sh, sw = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
    ty = torch.randint(-sh, sh + 1, (n, 1, 1), device=dev)
    tx = torch.randint(-sw, sw + 1, (n, 1, 1), device=dev)
    gy = torch.arange(h, device=dev).view(1, h, 1) + ty + 1          # +1: the zero pad row
    gx = torch.arange(w, device=dev).view(1, 1, w) + tx + 1
    gy = gy.clamp(0, h + 1).expand(n, h, w)
    gx = gx.clamp(0, w + 1).expand(n, h, w)
    padded = F.pad(x, (1, 1, 1, 1))                                   # zeros outside the image
    bidx = torch.arange(n, device=dev).view(n, 1, 1).expand(n, h, w)
    y = padded.permute(0, 2, 3, 1)[bidx, gy, gx].permute(0, 3, 1, 2)
    return _blend(x, y, _per_sample(n, p, dev))


def aug_cutout(x: torch.Tensor, p=None, ratio: float = 0.5) -> torch.Tensor:
    """Zero one random square of ``ratio`` x the image size per image."""
    n, _c, h, w = x.shape
    dev = x.device
    ch, cw = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
    y0 = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=dev) - ch // 2
    x0 = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=dev) - cw // 2
    ys = torch.arange(h, device=dev).view(1, h, 1)
    xs = torch.arange(w, device=dev).view(1, 1, w)
    inside = (ys >= y0) & (ys < y0 + ch) & (xs >= x0) & (xs < x0 + cw)
    keep = (~inside).unsqueeze(1).to(x.dtype)
    return _blend(x, x * keep, _per_sample(n, p, dev))


_OPS = {"color": aug_color, "translation": aug_translation, "cutout": aug_cutout}


class DiffAugment:
    """Apply the same random-augmentation *policy* to real and fake batches before D.

    Each call draws fresh randomness; every op is differentiable in the
    input, so G's gradient flows through the augmented fakes. ``strength``
    (a float or a 0-dim device tensor) is the probability each op is applied
    to each image; 1.0 is the original DiffAugment (always on).
    """

    def __init__(self, policy: str | Sequence[str], strength: float | torch.Tensor = 1.0):
        self.ops = parse_augment_policy(policy) if isinstance(policy, str) else tuple(policy)
        for op in self.ops:
            if op not in _OPS:
                raise ConfigError(f"unknown augmentation '{op}'")
        self.strength = strength

    @property
    def enabled(self) -> bool:
        return bool(self.ops)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.ops:
            return x
        p = self.strength
        if isinstance(p, (int, float)) and p <= 0.0:
            return x
        for op in self.ops:
            x = _OPS[op](x, p)
        return x.contiguous()


class AdaptiveStrength:
    """ADA-style augmentation strength on the device, driven by D's overfitting signal.

    ``observe(real_logits)`` accumulates E[sign(D(real))]; every ``interval``
    calls the strength moves up when that exceeds ``target`` (D is too sure
    of the training images: it is memorising them) and down otherwise, by at
    most ``interval * batch / speed_images`` per update (ADA: 0 -> 1 over
    ``speed_images`` images). Everything stays a device tensor: no sync.
    """

    def __init__(self, device: torch.device, *, target: float = 0.6, interval: int = 4,
                 speed_images: int = 100_000, initial: float = 0.0, maximum: float = 1.0):
        self.target = float(target)
        self.interval = int(interval)
        self.speed_images = float(speed_images)
        self.maximum = float(maximum)
        self.p = torch.tensor(float(initial), device=device)
        self._signs = torch.zeros((), device=device)
        self._count = 0
        self._images = 0

    def observe(self, real_logits: torch.Tensor) -> None:
        self._signs = self._signs + torch.sign(real_logits.detach().float()).mean()
        self._count += 1
        self._images += int(real_logits.shape[0])
        if self._count >= self.interval:
            rt = self._signs / self._count
            step = self._images / self.speed_images
            self.p = (self.p + torch.sign(rt - self.target) * step).clamp(0.0, self.maximum)
            self._signs = torch.zeros_like(self._signs)
            self._count = 0
            self._images = 0

    def state_dict(self) -> dict:
        return {"p": self.p.detach().cpu()}

    def load_state_dict(self, state: dict) -> None:
        if "p" in state:
            self.p = state["p"].to(self.p.device, self.p.dtype)


# -- exponential moving average of G ----------------------------------------------------------
class EMA:
    """A moving average copy of a network: ``avg = decay * avg + (1 - decay) * live``.

    With ``warmup`` the decay used at update ``t`` is
    ``min(decay, (1 + t) / (10 + t))`` so the average follows the fast early
    changes instead of staying near the random initialisation for thousands
    of steps. Buffers (BatchNorm running statistics) are copied, not averaged.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, *, warmup: bool = True):
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.warmup = warmup
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        t = self.updates
        return min(self.decay, (1.0 + t) / (10.0 + t))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        avg = [p for p in self.module.parameters()]
        live = [p.detach() for p in model.parameters()]
        if avg:
            # avg += (1 - d) * (live - avg): one fused kernel per dtype/device group
            torch._foreach_lerp_(avg, live, 1.0 - d)
        for b_avg, b_live in zip(self.module.buffers(), model.buffers()):
            b_avg.copy_(b_live)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state.get("updates", 0))


# -- losses -----------------------------------------------------------------------------------
def check_loss(kind: str) -> str:
    if kind not in LOSSES:
        raise ConfigError(f"setting 'loss': {kind!r} is not one of {', '.join(LOSSES)}")
    return kind


def d_loss(kind: str, real_logits: torch.Tensor, fake_logits: torch.Tensor, *,
           label_smoothing: float = 0.0) -> torch.Tensor:
    """D's loss for real and fake logits (WGAN-GP: without the penalty term).

    ``label_smoothing`` (BCE only) is one-sided: real targets become
    ``1 - label_smoothing``; fake targets stay 0.
    """
    real_logits, fake_logits = real_logits.float(), fake_logits.float()
    if kind == "bce":
        target = torch.full_like(real_logits, 1.0 - float(label_smoothing))
        return (F.binary_cross_entropy_with_logits(real_logits, target)
                + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
    if kind == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    if kind == "wgan-gp":
        return fake_logits.mean() - real_logits.mean()
    raise ConfigError(f"unknown loss '{kind}'")


def g_loss(kind: str, fake_logits: torch.Tensor) -> torch.Tensor:
    """G's loss: non-saturating BCE, or -E[D(G(z))] for hinge and WGAN-GP."""
    fake_logits = fake_logits.float()
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    if kind in ("hinge", "wgan-gp"):
        return -fake_logits.mean()
    raise ConfigError(f"unknown loss '{kind}'")


def gradient_penalty(D: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     weight: float = 10.0) -> torch.Tensor:
    """WGAN-GP: ``weight * E[(||grad D(x_hat)|| - 1)^2]`` on real/fake interpolates."""
    n = real.shape[0]
    eps = torch.rand(n, 1, 1, 1, device=real.device, dtype=real.dtype)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    out = D(x_hat)
    (grad,) = torch.autograd.grad(out.float().sum(), x_hat, create_graph=True)
    norms = grad.flatten(1).float().norm(2, dim=1)
    return weight * ((norms - 1.0) ** 2).mean()


# -- spectral norm ------------------------------------------------------------------------------
def apply_spectral_norm(module: nn.Module, types: tuple = (nn.Conv2d, nn.Linear,
                                                           nn.ConvTranspose2d)) -> nn.Module:
    """Wrap every conv / linear layer's weight in spectral normalisation (in place)."""
    for child in list(module.modules()):
        if isinstance(child, types) and not hasattr(child, "parametrizations"):
            nn.utils.parametrizations.spectral_norm(child)
    return module


def has_spectral_norm(module: nn.Module) -> bool:
    return any(hasattr(m, "parametrizations") and "weight" in m.parametrizations
               for m in module.modules())


# -- balance rules ------------------------------------------------------------------------------
class DPause:
    """Pause D's updates while its (smoothed) loss is below ``threshold``.

    When D wins too easily its loss goes to zero and G's gradient vanishes;
    skipping D's update lets G catch up. The decision needs the loss on the
    host, so it is refreshed only every ``check_every`` steps (one small GPU
    sync each time) and reused in between. ``threshold <= 0`` disables it.
    The rule never pauses D for more than ``max_pause`` steps in a row so the
    run cannot freeze.
    """

    def __init__(self, threshold: float, *, check_every: int = 8, smoothing: float = 0.8,
                 max_pause: int = 200):
        self.threshold = float(threshold)
        self.check_every = max(1, int(check_every))
        self.smoothing = float(smoothing)
        self.max_pause = int(max_pause)
        self._avg: torch.Tensor | None = None
        self._steps = 0
        self._paused = False
        self._paused_for = 0
        self.paused_steps = 0

    @property
    def enabled(self) -> bool:
        return self.threshold > 0.0

    def should_update_d(self) -> bool:
        """Whether D should be updated at this step (call once per step)."""
        if not self.enabled:
            return True
        self._steps += 1
        if self._avg is not None and self._steps % self.check_every == 0:
            self._paused = float(self._avg) < self.threshold          # GPU sync, every N steps
        if self._paused:
            self._paused_for += 1
            if self._paused_for > self.max_pause:
                self._paused, self._paused_for = False, 0
            else:
                self.paused_steps += 1
                return False
        else:
            self._paused_for = 0
        return True

    def observe(self, loss_d: torch.Tensor) -> None:
        """Feed D's loss (a device tensor) measured this step."""
        if not self.enabled:
            return
        v = loss_d.detach().float()
        self._avg = v if self._avg is None else self._avg * self.smoothing + v * (1 - self.smoothing)

    @property
    def paused(self) -> bool:
        return self._paused


class InstanceNoise:
    """Gaussian noise of std ``sigma`` on D's inputs, decaying linearly to 0 over ``anneal_steps``."""

    def __init__(self, sigma: float, anneal_steps: int = 2000):
        self.sigma = float(sigma)
        self.anneal_steps = max(1, int(anneal_steps))
        self.step = 0

    @property
    def current(self) -> float:
        return self.sigma * max(0.0, 1.0 - self.step / self.anneal_steps)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        s = self.current
        return x + torch.randn_like(x) * s if s > 0 else x

    def advance(self) -> None:
        self.step += 1


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def accuracy(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """D's accuracy on real (logit > 0) and on fake (logit < 0), as device tensors."""
    return ((real_logits.detach() > 0).float().mean(), (fake_logits.detach() < 0).float().mean())
