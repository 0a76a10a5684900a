"""Perceptual losses (Gatys, Ecker and Bethge, 2016; Johnson, Alahi and Fei-Fei, 2016)
and colour helpers. Images here are float tensors in [0, 1], (N, 3, H, W).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix of (N, C, H, W) features, normalised by C*H*W: (N, C, C).

    Always computed in float32 with autocast off: in bf16 the sums over
    H*W positions lose the precision the style loss depends on.
    """
    n, c, h, w = features.shape
    with torch.autocast(features.device.type, enabled=False):
        f = features.float().reshape(n, c, h * w)
        return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of feature maps (the target broadcasts over the batch)."""
    return F.mse_loss(features.float(), target.float().expand_as(features))


def style_loss(features: Mapping[str, torch.Tensor], target_grams: Mapping[str, torch.Tensor],
               layer_weights: Mapping[str, float]) -> torch.Tensor:
    """Weighted sum over layers of the mean squared Gram difference."""
    total = None
    for name, weight in layer_weights.items():
        if weight == 0:
            continue
        g = gram_matrix(features[name])
        term = weight * F.mse_loss(g, target_grams[name].expand_as(g))
        total = term if total is None else total + term
    if total is None:
        return torch.zeros((), device=next(iter(features.values())).device)
    return total


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Total variation: mean squared difference of neighbouring pixels (both directions)."""
    dh = image[:, :, 1:, :] - image[:, :, :-1, :]
    dw = image[:, :, :, 1:] - image[:, :, :, :-1]
    return dh.float().pow(2).mean() + dw.float().pow(2).mean()


def blended_grams(grams: Sequence[Mapping[str, torch.Tensor]], weights: Sequence[float]
                  ) -> dict[str, torch.Tensor]:
    """One style target from several: the weighted mean of their Gram matrices."""
    total = float(sum(weights))
    if total <= 0:
        raise ValueError("style blend weights must add up to more than 0")
    out: dict[str, torch.Tensor] = {}
    for g, w in zip(grams, weights):
        for name, value in g.items():
            term = value * (w / total)
            out[name] = out[name] + term if name in out else term
    return out


# -- colour ------------------------------------------------------------------------------------
# YIQ (NTSC): Y is the luminance, I and Q the chroma. Used for colour preservation
# by luminance-only transfer (Gatys, Bethge, Hertzmann and Shechtman, 2016).
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114],
                            [0.595716, -0.274453, -0.321263],
                            [0.211456, -0.522591, 0.311135]])
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    m = _RGB_TO_YIQ.to(image.device, image.dtype)
    return torch.einsum("ij,njhw->nihw", m, image)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    m = _YIQ_TO_RGB.to(image.device, image.dtype)
    return torch.einsum("ij,njhw->nihw", m, image)


def luminance(image: torch.Tensor) -> torch.Tensor:
    """The Y channel repeated as grey RGB (what the network sees in luminance mode)."""
    y = rgb_to_yiq(image)[:, :1]
    return y.expand(-1, 3, -1, -1).contiguous()


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Grey style luminance with mean and std matched to the content's luminance."""
    ys, yc = luminance(style)[:, :1], luminance(content)[:, :1]
    matched = (ys - ys.mean()) / (ys.std() + 1e-6) * yc.std() + yc.mean()
    return matched.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()


def combine_luminance(luma_image: torch.Tensor, colour_source: torch.Tensor) -> torch.Tensor:
    """Y of ``luma_image`` with I and Q of ``colour_source`` (resized to match), in RGB."""
    if colour_source.shape[-2:] != luma_image.shape[-2:]:
        colour_source = F.interpolate(colour_source, size=luma_image.shape[-2:],
                                      mode="bilinear", align_corners=False)
    y = rgb_to_yiq(luma_image)[:, :1]
    iq = rgb_to_yiq(colour_source)[:, 1:]
    return yiq_to_rgb(torch.cat([y, iq], dim=1)).clamp(0, 1)
