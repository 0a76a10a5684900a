"""The few-shot GAN's networks, after the description in Liu et al., "Towards Faster
and Stabilized GAN Training for High-fidelity Few-shot Image Synthesis" (ICLR 2021).

Generator: a 4x4 start from the latent, then one up-sampling block per doubling
(nearest up-sampling, 3x3 convolution, BatchNorm, GLU; every other block has a
second convolution and optional noise injection). Skip-layer excitation (SLE):
the feature map at resolution r/16 gates the channels of the map at r, for every
r >= 64, so the low resolutions shape the high ones through one cheap path.

Discriminator: strided blocks with a residual average-pool path down to 8x8,
a 5x5 map of hinge logits, and two small decoders that make it a
self-supervised auto-encoder as well: one reconstructs the whole (augmented)
real image from the 8x8 features, the other one random quarter of it from the
matching quarter of the 16x16 features.

Widths follow the resolution of each feature map: wide at 4-16 px, halving as
the maps grow past 64 px, times the ``g_features`` / ``d_features`` settings.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ganstudio.core import gan_tools as gt

RESOLUTIONS = (64, 128, 256, 512, 1024)
LATENT_DIM = 256
#: D's working resolution: images larger than this are first brought down to it by
#: cheap strided convolutions (the expensive blocks start here)
D_WORK_RES = 256
#: size of the decoders' reconstructions (smaller for 64 px images)
DECODER_RES = 128


def _log2(r: int) -> int:
    k = int(round(math.log2(r)))
    if 2 ** k != r:
        raise ValueError(f"resolution must be a power of two, got {r}")
    return k


def g_width(r: int, features: int) -> int:
    """Channels of G's feature map at resolution ``r``: 16x the width setting at 4 px,
    halving per doubling to 2x at 32-64 px, then halving again per doubling."""
    k = _log2(r)
    mult = 2.0 ** (6 - k) if r <= 32 else 2.0 ** (7 - k)
    return max(4, int(round(features * mult)))


def d_width(r: int, features: int) -> int:
    """Channels of D's feature map at resolution ``r`` (16x at 8 px, halving per doubling)."""
    k = _log2(r)
    mult = min(16.0, 2.0 ** (7 - k))
    return max(4, int(round(features * mult)))


def conv3(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False)


class NoiseInjection(nn.Module):
    """``x + w * noise`` with a learnt scalar ``w`` (starts at 0).

    Training draws fresh noise; evaluation (samples, exports) uses one fixed noise
    map kept as a buffer, so the same latent always gives the same picture and
    the exported network has no random op.
    """

    def __init__(self, size: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.register_buffer("fixed", torch.randn(1, 1, size, size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3],
                                device=x.device, dtype=x.dtype)
        else:
            noise = self.fixed.to(x.dtype)
        return x + self.weight.to(x.dtype) * noise


class UpBlock(nn.Module):
    """Double the resolution: nearest up-sampling, conv, [noise], BatchNorm, GLU,
    and with ``two_convs`` a second conv, [noise], BatchNorm, GLU."""

    def __init__(self, c_in: int, c_out: int, size: int, *, two_convs: bool, noise: bool):
        super().__init__()
        layers: list[nn.Module] = [nn.Upsample(scale_factor=2, mode="nearest")]
        convs = 2 if two_convs else 1
        c = c_in
        for _ in range(convs):
            layers.append(conv3(c, 2 * c_out))
            if noise and two_convs:
                layers.append(NoiseInjection(size))
            layers += [nn.BatchNorm2d(2 * c_out), nn.GLU(dim=1)]
            c = c_out
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SkipExcitation(nn.Module):
    """Skip-layer excitation: channel gates for a high-resolution map, computed from a
    low-resolution one (pooled to 4x4, a 4x4 conv to 1x1, LeakyReLU, 1x1 conv, sigmoid)."""

    def __init__(self, c_low: int, c_high: int):
        super().__init__()
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(4),
            nn.Conv2d(c_low, c_high, 4, 1, 0, bias=False),
            nn.LeakyReLU(0.1),
            nn.Conv2d(c_high, c_high, 1, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return high * self.gate(low)


class Generator(nn.Module):
    """Latents (N, LATENT_DIM) -> images (N, C, R, R) in [-1, 1]."""

    def __init__(self, resolution: int, channels: int = 3, features: int = 64, *,
                 noise: bool = True, latent_dim: int = LATENT_DIM):
        super().__init__()
        if resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {resolution}")
        self.resolution = resolution
        self.latent_dim = latent_dim
        w4 = g_width(4, features)
        self.start = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, 2 * w4, 4, 1, 0, bias=False),
            nn.BatchNorm2d(2 * w4), nn.GLU(dim=1))
        self.ups = nn.ModuleDict()
        self.sle = nn.ModuleDict()
        r = 8
        while r <= resolution:
            two = _log2(r) % 2 == 1          # 8, 32, 128, 512: the deeper blocks
            self.ups[str(r)] = UpBlock(g_width(r // 2, features), g_width(r, features), r,
                                       two_convs=two, noise=noise)
            if r >= 64:
                self.sle[str(r)] = SkipExcitation(g_width(r // 16, features),
                                                  g_width(r, features))
            r *= 2
        self.to_rgb = nn.Sequential(conv3(g_width(resolution, features), channels), nn.Tanh())
        init_weights(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.start(z.reshape(z.shape[0], -1, 1, 1))
        maps = {4: x}
        r = 8
        while r <= self.resolution:
            x = self.ups[str(r)](x)
            if r >= 64:
                x = self.sle[str(r)](maps[r // 16], x)
            maps[r] = x
            r *= 2
        return self.to_rgb(x)


class DownBlock(nn.Module):
    """Halve the resolution: (conv 4x4/2, BN, LReLU, conv 3x3, BN, LReLU) averaged with
    (average pool, conv 1x1, BN, LReLU)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out),
            nn.LeakyReLU(0.2),
            conv3(c_out, c_out), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))
        self.skip = nn.Sequential(
            nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, 1, 0, bias=False),
            nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.main(x) + self.skip(x)) * 0.5


class Decoder(nn.Module):
    """Small decoder: features (N, c, 8, 8) -> image (N, C, size, size) in [-1, 1]."""

    def __init__(self, c_in: int, channels: int, size: int, features: int):
        super().__init__()
        layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(8)]
        c, r = c_in, 16
        while r <= size:
            c_out = max(4, int(round(features * 64 / r)))
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), conv3(c, 2 * c_out),
                       nn.BatchNorm2d(2 * c_out), nn.GLU(dim=1)]
            c, r = c_out, r * 2
        layers += [conv3(c, channels), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Discriminator(nn.Module):
    """Images (N, C, R, R) -> logits (N, 1, 5, 5); also the 16x16 and 8x8 features.

    ``blocks`` lists the layers in input order (stem, then one per halving, then the
    head): FreezeD freezes the first k of them.
    """

    def __init__(self, resolution: int, channels: int = 3, features: int = 64):
        super().__init__()
        if resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {resolution}")
        self.resolution = resolution
        stem: list[nn.Module] = [nn.Conv2d(channels, d_width(resolution, features), 3, 1, 1,
                                           bias=False), nn.LeakyReLU(0.2)]
        r = resolution
        while r > D_WORK_RES:      # cheap strided convs down to the working resolution
            stem += [nn.Conv2d(d_width(r, features), d_width(r // 2, features), 4, 2, 1,
                               bias=False),
                     nn.BatchNorm2d(d_width(r // 2, features)), nn.LeakyReLU(0.2)]
            r //= 2
        self.stem = nn.Sequential(*stem)
        self.downs = nn.ModuleList()
        self.down_res: list[int] = []
        while r > 8:
            self.downs.append(DownBlock(d_width(r, features), d_width(r // 2, features)))
            r //= 2
            self.down_res.append(r)
        w8 = d_width(8, features)
        self.head = nn.Sequential(
            nn.Conv2d(w8, w8, 1, 1, 0, bias=False), nn.BatchNorm2d(w8), nn.LeakyReLU(0.2),
            nn.Conv2d(w8, 1, 4, 1, 0, bias=False))
        dec_size = min(DECODER_RES, resolution)
        self.decoder_res = dec_size
        self.decode_whole = Decoder(w8, channels, dec_size, features)
        self.decode_part = Decoder(d_width(16, features), channels, dec_size, features)
        init_weights(self)
        gt.apply_spectral_norm(self)

    @property
    def blocks(self) -> list[nn.Module]:
        return [self.stem, *self.downs, self.head]

    def features(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """Feature maps by resolution (the stem's output at the working resolution first)."""
        x = self.stem(x)
        out = {x.shape[-1]: x}
        for block, r in zip(self.downs, self.down_res):
            x = block(x)
            out[r] = x
        return out

    def forward(self, x: torch.Tensor, *, reconstruct: int | None = None):
        """Logits; with ``reconstruct=q`` (quarter 0-3) also the two reconstructions."""
        maps = self.features(x)
        logits = self.head(maps[8])
        if reconstruct is None:
            return logits
        f16 = maps[16]
        qy, qx = divmod(int(reconstruct), 2)
        part = f16[:, :, qy * 8:(qy + 1) * 8, qx * 8:(qx + 1) * 8]
        return logits, self.decode_whole(maps[8]), self.decode_part(part)


def quarter(images: torch.Tensor, q: int) -> torch.Tensor:
    """Quarter ``q`` (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right)."""
    h, w = images.shape[-2] // 2, images.shape[-1] // 2
    qy, qx = divmod(int(q), 2)
    return images[..., qy * h:(qy + 1) * h, qx * w:(qx + 1) * w]


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Area down-sampling (or bilinear up-sampling) to ``size`` x ``size``."""
    if images.shape[-1] == size:
        return images
    if images.shape[-1] > size:
        return F.adaptive_avg_pool2d(images, size)
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)


def init_weights(module: nn.Module) -> None:
    """N(0, 0.02) convolutions, N(1, 0.02) BatchNorm scales (as in DCGAN)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
