"""The discriminator's reconstruction loss, offline.

The paper compares the decoders' reconstructions with the real images through
a learnt perceptual metric whose weights are downloaded. Here the loss is built
from parts that need nothing from the network:

- a pixel term: mean absolute difference;
- a multi-scale structural term: 1 - SSIM (Wang et al., 2004) with an 11-tap
  Gaussian window, averaged over the full size and two halvings;
- a perceptual term, only when a local VGG-19 weights file is present: the
  distance between unit-normalised relu1_1, relu2_1 and relu3_1 activations.
  The file is looked up where GAN Studio's style models look for it: the path
  given in the ``vgg_weights`` setting, else torchvision's ImageNet file in the
  torch hub cache. Nothing is ever downloaded here.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ganstudio.core.checkpoints import load_weights_file
from ganstudio.core.errors import UserError

VGG19_FILE = "vgg19-dcbb9e9d.pth"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision vgg19.features indices of the convolutions up to relu3_1, and their shapes
_VGG_CONVS = {0: (64, 3), 2: (64, 64), 5: (128, 64), 7: (128, 128), 10: (256, 128)}


# -- the structural term ---------------------------------------------------------------------
def _gaussian_window(size: int = 11, sigma: float = 1.5, *, device=None) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of two batches in [-1, 1] (computed in float32, per channel)."""
    a, b = (a.float() + 1) / 2, (b.float() + 1) / 2
    c = a.shape[1]
    size = min(11, a.shape[-1], a.shape[-2])
    if size % 2 == 0:
        size -= 1
    g = _gaussian_window(size, 1.5 * size / 11, device=a.device)
    wx = g.view(1, 1, 1, size).repeat(c, 1, 1, 1)
    wy = g.view(1, 1, size, 1).repeat(c, 1, 1, 1)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(x, wx, groups=c), wy, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    value = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return value.mean()


def multiscale_structure_loss(a: torch.Tensor, b: torch.Tensor, scales: int = 3) -> torch.Tensor:
    """1 - SSIM averaged over ``scales`` sizes (each half the previous; stops at 8 px)."""
    total, n = a.new_zeros((), dtype=torch.float32), 0
    for i in range(scales):
        if i:
            if a.shape[-1] < 16:
                break
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
        total = total + (1.0 - ssim(a, b))
        n += 1
    return total / n


# -- the perceptual term (optional) -------------------------------------------------------------
def find_vgg_weights(explicit: str | os.PathLike | None = None) -> Path | None:
    """The VGG-19 weights file to use, or None when there is none on this machine.

    An explicit path that does not exist is a mistake the user must hear about."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise UserError(f"setting 'vgg_weights': file not found: {path}")
        return path
    cached = Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE
    return cached if cached.is_file() else None


def _read_state(path: Path) -> dict:
    """Read a weights file; a plain torch file is memory-mapped (the full VGG-19 file
    is 548 MB and only its first five convolutions are needed)."""
    if path.suffix != ".safetensors":
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # noqa: BLE001 - not a zip file: the general reader says why
            pass
    try:
        return load_weights_file(path, map_location="cpu")
    except UserError as e:
        raise UserError(f"setting 'vgg_weights': {e}") from None


class VGGTrunk(nn.Module):
    """VGG-19's first five convolutions; returns relu1_1, relu2_1 and relu3_1 of
    images in [-1, 1]. Frozen; not part of the model's state."""

    def __init__(self, state: dict[str, torch.Tensor]):
        super().__init__()
        self.convs = nn.ModuleDict()
        for i, (c_out, c_in) in _VGG_CONVS.items():
            conv = nn.Conv2d(c_in, c_out, 3, 1, 1)
            conv.weight.data.copy_(state[f"features.{i}.weight"].float())
            conv.bias.data.copy_(state[f"features.{i}.bias"].float())
            self.convs[str(i)] = conv
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = ((x + 1) / 2 - self.mean) / self.std
        c = self.convs
        r11 = F.relu(c["0"](x))
        x = F.max_pool2d(F.relu(c["2"](r11)), 2)
        r21 = F.relu(c["5"](x))
        x = F.max_pool2d(F.relu(c["7"](r21)), 2)
        r31 = F.relu(c["10"](x))
        return [r11, r21, r31]


def load_vgg_trunk(path: Path, device: torch.device) -> VGGTrunk:
    """The trunk with weights from ``path``; UserError naming the file when unusable."""
    state = _read_state(path)
    if isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    problems = []
    for i, (c_out, c_in) in _VGG_CONVS.items():
        w, b = state.get(f"features.{i}.weight"), state.get(f"features.{i}.bias")
        if not isinstance(w, torch.Tensor) or tuple(w.shape) != (c_out, c_in, 3, 3):
            problems.append(f"features.{i}.weight")
        if not isinstance(b, torch.Tensor) or tuple(b.shape) != (c_out,):
            problems.append(f"features.{i}.bias")
    if problems:
        raise UserError(f"{path} is not a VGG-19 weights file (missing or misshapen "
                        f"{', '.join(problems[:3])}); give torchvision's vgg19 state_dict, "
                        "or leave vgg_weights empty to train without the perceptual term")
    return VGGTrunk(state).to(device)


def perceptual_distance(vgg: VGGTrunk, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared distance of channel-normalised VGG activations (summed over layers)."""
    total = a.new_zeros((), dtype=torch.float32)
    for fa, fb in zip(vgg(a.float()), vgg(b.float())):
        fa = fa / (fa.norm(dim=1, keepdim=True) + 1e-10)
        fb = fb / (fb.norm(dim=1, keepdim=True) + 1e-10)
        total = total + ((fa - fb) ** 2).sum(dim=1).mean()
    return total


class ReconstructionLoss:
    """pixel + multi-scale structure (+ perceptual when a VGG trunk is given)."""

    def __init__(self, vgg: VGGTrunk | None = None):
        self.vgg = vgg

    def __call__(self, recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # float32 and outside autocast: SSIM's variances lose their meaning in bf16
        with torch.autocast(recon.device.type, enabled=False):
            recon, target = recon.float(), target.float()
            loss = (recon - target).abs().mean() + multiscale_structure_loss(recon, target)
            if self.vgg is not None:
                loss = loss + perceptual_distance(self.vgg, recon, target)
        return loss
