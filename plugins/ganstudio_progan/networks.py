"""Generator and discriminator for ProGAN and MSG-GAN.

Both networks are built once for the TARGET resolution; ``level`` says how
much of them is in use (level 0 = 4x4, level k = 4 * 2**k pixels). ProGAN
runs the first ``level`` blocks and fades the newest one in with ``alpha``;
MSG-GAN (Karnewar and Wang, "MSG-GAN: Multi-Scale Gradients for Generative
Adversarial Networks", 2019/2020) always runs all of them, and the generator
hands an image at every scale to the discriminator.

Widths follow the paper: ``min(channel_max, channel_base // resolution)``
feature maps at each resolution (``16384 // res`` capped at 512 is the
paper's 1024 px network).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from .layers import (EqualizedConv2d, EqualizedLinear, downscale2x, lrelu, minibatch_stddev,
                     pixel_norm, upscale2x)


def level_count(resolution: int) -> int:
    """Number of doublings from 4x4 to ``resolution`` (8 -> 1, 128 -> 5)."""
    n = int(round(math.log2(resolution))) - 2
    if n < 1 or 4 * 2 ** n != resolution:
        raise ValueError(f"resolution must be a power of two from 8 up, got {resolution}")
    return n


def resolution_at(level: int) -> int:
    return 4 * 2 ** level


def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    return max(1, min(channel_max, channel_base // resolution))



def fade(old: torch.Tensor, new: torch.Tensor, alpha: float) -> torch.Tensor:
    """Blend the previous scale's output into the new block's: (1 - alpha) * old + alpha * new.

    In float32: under bf16 autocast the two branches can arrive in different dtypes."""
    return torch.lerp(old.float(), new.float(), alpha)


class Generator(nn.Module):
    """z -> image. ``forward(z)`` uses the stored level/alpha (the current training state)."""

    def __init__(self, latent_dim: int, out_channels: int, resolution: int,
                 channel_base: int, channel_max: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.max_level = level_count(resolution)
        ch = [channels_at(resolution_at(k), channel_base, channel_max)
              for k in range(self.max_level + 1)]
        self.widths = ch
        # 4x4 start: a dense layer (gain sqrt(2)/4 as in the paper's code) then a 3x3 conv.
        self.dense = EqualizedLinear(latent_dim, ch[0] * 16, gain=math.sqrt(2.0) / 4)
        self.conv0 = EqualizedConv2d(ch[0], ch[0], 3)
        self.blocks = nn.ModuleList([nn.Identity()] + [
            nn.ModuleList([EqualizedConv2d(ch[k - 1], ch[k], 3), EqualizedConv2d(ch[k], ch[k], 3)])
            for k in range(1, self.max_level + 1)])
        self.to_rgb = nn.ModuleList([EqualizedConv2d(ch[k], out_channels, 1, gain=1.0)
                                     for k in range(self.max_level + 1)])
        # The training state, stored with the weights so an exported generator knows
        # which resolution it was trained to. Python copies avoid a GPU read per call.
        self.register_buffer("level", torch.tensor(self.max_level, dtype=torch.long))
        self.register_buffer("alpha", torch.tensor(1.0))
        self._level, self._alpha = self.max_level, 1.0
        self.register_load_state_dict_post_hook(_sync_progress)

    def set_progress(self, level: int, alpha: float) -> None:
        if (level, alpha) != (self._level, self._alpha):
            self._level, self._alpha = int(level), float(alpha)
            self.level.fill_(self._level)
            self.alpha.fill_(self._alpha)

    def _start(self, z: torch.Tensor) -> torch.Tensor:
        x = self.dense(pixel_norm(z)).view(z.shape[0], -1, 4, 4)
        x = pixel_norm(lrelu(x))
        return pixel_norm(lrelu(self.conv0(x)))

    def _block(self, k: int, x: torch.Tensor) -> torch.Tensor:
        conv1, conv2 = self.blocks[k]
        x = pixel_norm(lrelu(conv1(upscale2x(x))))
        return pixel_norm(lrelu(conv2(x)))

    def forward(self, z: torch.Tensor, level: int | None = None,
                alpha: float | None = None, all_scales: bool = False) -> torch.Tensor:
        """Images for latents ``z``; in eval mode (the averaged copy that samples and
        exports use) clamped to [-1, 1], as every generator module promises.
        ``all_scales``: :meth:`forward_all` (MSG-GAN), reached through ``forward`` so
        that a distributed run's DDP wrapper sees it."""
        if all_scales:
            return self.forward_all(z)
        img = self._synthesis(z, level, alpha)
        return img if self.training else img.clamp(-1.0, 1.0)

    def _synthesis(self, z: torch.Tensor, level: int | None,
                   alpha: float | None) -> torch.Tensor:
        level = self._level if level is None else int(level)
        alpha = self._alpha if alpha is None else float(alpha)
        x = self._start(z)
        if level == 0:
            return self.to_rgb[0](x)
        for k in range(1, level):
            x = self._block(k, x)
        img = self.to_rgb[level](self._block(level, x))
        if alpha < 1.0:  # fade-in: the previous resolution's output, scaled up
            old = upscale2x(self.to_rgb[level - 1](x))
            img = fade(old, img, alpha)
        return img

    def forward_all(self, z: torch.Tensor) -> list[torch.Tensor]:
        """Images at every scale, 4x4 first (MSG-GAN)."""
        x = self._start(z)
        out = [self.to_rgb[0](x)]
        for k in range(1, self.max_level + 1):
            x = self._block(k, x)
            out.append(self.to_rgb[k](x))
        return out


def _sync_progress(module: nn.Module, _incompatible) -> None:
    module._level = int(module.level)
    module._alpha = float(module.alpha)


class Discriminator(nn.Module):
    """image (or, with ``multi_scale``, a list of images 4x4 first) -> one score per sample.

    ``multi_scale`` (MSG-GAN): the raw image of each lower scale is concatenated
    to the features entering that scale's block (the paper's simple combine
    function), and only the full-resolution image goes through ``from_rgb``.
    """

    def __init__(self, in_channels: int, resolution: int, channel_base: int, channel_max: int,
                 *, mbstd_group: int = 4, multi_scale: bool = False):
        super().__init__()
        self.max_level = level_count(resolution)
        self.mbstd_group = mbstd_group
        self.multi_scale = multi_scale
        L = self.max_level
        ch = [channels_at(resolution_at(k), channel_base, channel_max) for k in range(L + 1)]
        extra = [in_channels if multi_scale and k < L else 0 for k in range(L + 1)]
        n_from_rgb = 1 if multi_scale else L + 1
        self.from_rgb = nn.ModuleList([EqualizedConv2d(in_channels, ch[k], 1)
                                       for k in range(L + 1 - n_from_rgb, L + 1)])
        self.blocks = nn.ModuleList([nn.Identity()] + [
            nn.ModuleList([EqualizedConv2d(ch[k] + extra[k], ch[k], 3),
                           EqualizedConv2d(ch[k], ch[k - 1], 3)])
            for k in range(1, L + 1)])
        self.final_conv = EqualizedConv2d(ch[0] + extra[0] + 1, ch[0], 3)
        self.final_dense = EqualizedLinear(ch[0] * 16, ch[0])
        self.out = EqualizedLinear(ch[0], 1, gain=1.0)

    def _from_rgb(self, level: int, img: torch.Tensor) -> torch.Tensor:
        idx = level if not self.multi_scale else level - self.max_level
        return lrelu(self.from_rgb[idx](img))

    def _block(self, k: int, x: torch.Tensor) -> torch.Tensor:
        conv1, conv2 = self.blocks[k]
        x = lrelu(conv1(x))
        return downscale2x(lrelu(conv2(x)))

    def _final(self, x: torch.Tensor) -> torch.Tensor:
        x = minibatch_stddev(x, self.mbstd_group)
        x = lrelu(self.final_conv(x))
        x = lrelu(self.final_dense(x.flatten(1)))
        return self.out(x).view(-1)

    def forward(self, img, level: int | None = None, alpha: float = 1.0) -> torch.Tensor:
        if self.multi_scale:
            return self._forward_multi(img)
        level = self.max_level if level is None else int(level)
        x = self._from_rgb(level, img)
        if level > 0:
            x = self._block(level, x)
            if alpha < 1.0:  # fade-in: the previous resolution's path on the halved image
                old = self._from_rgb(level - 1, downscale2x(img))
                x = fade(old, x, alpha)
        for k in range(level - 1, 0, -1):
            x = self._block(k, x)
        return self._final(x)

    def _forward_multi(self, images: list[torch.Tensor]) -> torch.Tensor:
        L = self.max_level
        if len(images) != L + 1:
            raise ValueError(f"MSG-GAN discriminator expects {L + 1} scales, got {len(images)}")
        x = self._from_rgb(L, images[L])
        for k in range(L, 0, -1):
            if k < L:
                x = torch.cat([x, images[k].to(x.dtype)], dim=1)
            x = self._block(k, x)
        x = torch.cat([x, images[0].to(x.dtype)], dim=1)
        return self._final(x)
