"""Building blocks of ProGAN (Karras et al., "Progressive Growing of GANs for
Improved Quality, Stability, and Variation", 2018).

* Equalized learning rate: weights are stored as N(0, 1) and scaled at run
  time by He's constant ``gain / sqrt(fan_in)``. Adam's update size does not
  depend on the weight's scale, so every layer then learns at the same speed.
* Pixel-wise feature normalisation in the generator.
* Minibatch standard deviation in the discriminator: one extra feature map
  with the average standard deviation of the features over a small group of
  samples, so D can see a lack of variety.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class EqualizedConv2d(nn.Module):
    """A conv whose weight is N(0, 1) at rest and scaled by ``gain / sqrt(fan_in)`` in use."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *,
                 gain: float = math.sqrt(2.0), padding: int | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size,
                                               kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.scale = gain / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding = kernel_size // 2 if padding is None else padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)

    def extra_repr(self) -> str:
        o, i, k, _ = self.weight.shape
        return f"{i}, {o}, kernel_size={k}, scale={self.scale:.4g}"


class EqualizedLinear(nn.Module):
    """A dense layer with the equalized-learning-rate scaling."""

    def __init__(self, in_features: int, out_features: int, *, gain: float = math.sqrt(2.0)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.scale = gain / math.sqrt(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)

    def extra_repr(self) -> str:
        o, i = self.weight.shape
        return f"{i}, {o}, scale={self.scale:.4g}"


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Normalise each pixel's feature vector to unit average square (dim 1)."""
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)


def minibatch_group(n: int, group_size: int) -> int:
    """The largest group size <= ``group_size`` that divides the batch ``n``."""
    g = max(1, min(group_size, n))
    while n % g:
        g -= 1
    return g


def minibatch_stddev(x: torch.Tensor, group_size: int = 4, eps: float = 1e-8) -> torch.Tensor:
    """Append one channel: the mean over (C, H, W) of the per-group standard deviation.

    The batch is split into groups of ``g`` consecutive-stride samples (sample
    ``i`` belongs to group ``i % (n // g)``, as in the paper's reference code);
    every sample of a group gets its group's value, broadcast over H and W.
    """
    n, c, h, w = x.shape
    g = minibatch_group(n, group_size)
    y = x.float().reshape(g, n // g, c, h, w)
    y = y - y.mean(dim=0, keepdim=True)
    y = torch.sqrt(y.pow(2).mean(dim=0) + eps)           # (n/g, c, h, w)
    y = y.mean(dim=(1, 2, 3))                            # (n/g,)
    y = y.repeat(g).view(n, 1, 1, 1).expand(n, 1, h, w).to(x.dtype)
    return torch.cat([x, y], dim=1)


def upscale2x(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour doubling (what the paper's generator uses)."""
    return F.interpolate(x, scale_factor=2, mode="nearest")


def downscale2x(x: torch.Tensor) -> torch.Tensor:
    """2x2 box-filter halving (what the paper's discriminator uses)."""
    return F.avg_pool2d(x, 2)


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)
