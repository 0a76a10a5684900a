"""Neural style transfer by optimisation (Gatys, Ecker and Bethge, 2016).

One engine step = one optimiser iteration on the image: for L-BFGS one
iteration of :class:`~ganstudio_style.lbfgs.DeviceLBFGS` (torch's L-BFGS
iteration without its host reads; the curvature history is kept between
steps; with ``line_search`` torch's ``LBFGS`` with the strong-Wolfe search),
for Adam one gradient step. No step reads a value back to the host. The loss is
content (feature MSE on one deep layer) + style (Gram-matrix MSE on several
layers, per-layer weights, several styles blended by weight) + total variation.

Large outputs are made coarse-to-fine: the iterations are shared among scales
(e.g. 512 -> 1024 -> 2048 px), each scale starting from the upsampled result
of the previous one. The best image of the current scale (lowest total loss)
is kept on the device without a host sync, so stopping early returns the
best so far.

cuDNN autotuning (``torch.backends.cudnn.benchmark``, which the engine turns on
for CUDA) is off for this job's VGG passes: every new input shape (content,
each style, each scale, forward and backward) would be timed anew, costing
seconds, and its trial workspaces made the peak memory of a 512 px job tens of
GiB (the largest block the GPU could give). For VGG's plain 3x3 convolutions
cuDNN's heuristic choice is usually close to the fastest.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any

import torch
import torch.nn.functional as F

from ganstudio.core.config import Field
from ganstudio.core.errors import UserError
from ganstudio.core.model import ImageJob

from .imaging import load_image, parse_numbers, resize_tensor, split_paths
from .losses import (blended_grams, combine_luminance, content_loss, gram_matrix, luminance,
                     match_luminance, style_loss, tv_loss)
from .lbfgs import DeviceLBFGS
from .vgg import LAYER_INDEX, load_vgg

MODEL_ID = "style-transfer"
DEFAULT_STYLE_LAYERS = "relu1_1,relu2_1,relu3_1,relu4_1,relu5_1"
CONTENT_LAYERS = ["relu4_2", "relu4_1", "relu3_2", "relu3_1", "relu5_2", "relu2_2"]
#: Sizes above this are reached coarse-to-fine (each scale at most twice the previous).
COARSE_SIZE = 512


def schema() -> list[Field]:
    return [
        Field("content", "path", "", "The picture to repaint.", group="Images"),
        Field("style", "str", "", "Style image(s); several separated by '|'.", group="Images"),
        Field("style_blend", "str", "", "Blend weights of several styles, e.g. '0.7,0.3' "
              "(empty: equal).", group="Images"),
        Field("size", "int", 512, "Long side of the output in pixels (above 512 it is made "
              "coarse-to-fine).", min=16, max=4096, group="Images"),
        Field("style_scale", "float", 1.0, "Size of the style image relative to the output: "
              "larger values give larger brush strokes.", min=0.1, max=4.0,
              group="Images", advanced=True),
        Field("iterations", "int", 300, "Optimisation iterations (all scales together).",
              min=1, max=100_000),
        Field("optimizer", "choice", "lbfgs", "L-BFGS converges in fewer iterations; Adam uses "
              "less memory and is steadier on huge images.", choices=["lbfgs", "adam"]),
        Field("lr", "float", 0.02, "Adam learning rate (pixel values are 0-1); L-BFGS uses 1.",
              min=1e-5, max=1.0),
        Field("content_weight", "float", 1.0, "Weight of the content loss.", min=0.0, max=1e12),
        Field("style_weight", "float", 1e6, "Weight of the style loss.", min=0.0, max=1e15),
        Field("tv_weight", "float", 10.0, "Weight of the total-variation (smoothness) loss.",
              min=0.0, max=1e12),
        Field("content_layer", "choice", "relu4_2", "VGG-19 layer whose features must match "
              "the content image.", choices=CONTENT_LAYERS, group="Layers"),
        Field("style_layers", "str", DEFAULT_STYLE_LAYERS, "VGG-19 layers whose Gram matrices "
              "must match the style.", group="Layers", advanced=True),
        Field("style_layer_weights", "str", "", "Weight per style layer, e.g. '1,1,1,0.5,0.2' "
              "(empty: equal).", group="Layers"),
        Field("init", "choice", "content", "Start from the content image or from noise.",
              choices=["content", "noise"]),
        Field("preserve_colors", "bool", False, "Keep the content image's colours "
              "(transfer on luminance only).", group="Images"),
        Field("scales", "int", 0, "Coarse-to-fine scales (0: automatic from the size).",
              min=0, max=6, advanced=True),
        Field("pooling", "choice", "max", "VGG pooling; average pooling gives smoother results.",
              choices=["max", "avg"], group="Layers", advanced=True),
        Field("vgg_weights", "path", "", "VGG-19 weights file (torchvision key names); empty: "
              "torchvision's ImageNet file in the torch cache.", group="Layers"),
        Field("range_weight", "float", 1e3, "L-BFGS: weight of the penalty on pixel values "
              "outside 0-1 (Adam clamps instead).", min=0.0, max=1e12, advanced=True),
        Field("line_search", "bool", False, "L-BFGS with a strong-Wolfe line search: steadier, "
              "but a few loss evaluations per iteration.", advanced=True),
        Field("mixed_precision", "bool", False, "bf16 VGG passes on GPUs (faster, noisier; "
              "Grams stay fp32).", advanced=True),
        Field("seed", "int", 0, "Random seed (noise start).", min=0, max=2**31 - 1,
              advanced=True),
    ]


def scale_sizes(size: int, scales: int = 0) -> list[int]:
    """Long sides of the coarse-to-fine schedule, ending at ``size``."""
    if scales <= 0:
        scales = 1 if size <= COARSE_SIZE else 1 + math.ceil(math.log2(size / COARSE_SIZE))
    sizes = [max(16, round(size / 2 ** (scales - 1 - i))) for i in range(scales)]
    return sorted(set(sizes))


def split_iterations(total: int, n: int) -> list[int]:
    """Share ``total`` iterations among ``n`` scales (the finest takes the remainder)."""
    each = total // n
    return [each] * (n - 1) + [total - each * (n - 1)]


def parse_layer_weights(layers: list[str], raw: str) -> dict[str, float]:
    weights = parse_numbers(raw, "style_layer_weights") if str(raw).strip() else [1.0] * len(layers)
    if len(weights) != len(layers):
        raise UserError(f"setting 'style_layer_weights': {len(weights)} weight(s) for "
                        f"{len(layers)} style layers ({', '.join(layers)})")
    return dict(zip(layers, weights))


class StyleTransferJob(ImageJob):
    """Optimise one image so its VGG features match a content and its Grams a style."""

    def __init__(self, config: dict, image_shape: Any, device: torch.device):
        super().__init__(config, image_shape, device)
        cfg = self.config
        if not str(cfg.get("content") or "").strip():
            raise UserError("no content image given (setting 'content')")
        style_paths = split_paths(cfg.get("style", ""))
        if not style_paths:
            raise UserError("no style image given (setting 'style')")
        blend = (parse_numbers(cfg["style_blend"], "style_blend")
                 if str(cfg.get("style_blend") or "").strip() else [1.0] * len(style_paths))
        if len(blend) != len(style_paths):
            raise UserError(f"setting 'style_blend': {len(blend)} weight(s) for "
                            f"{len(style_paths)} style image(s)")
        if sum(blend) <= 0:
            raise UserError("setting 'style_blend': the weights must add up to more than 0")
        self.blend = blend
        self.style_layers = [s.strip() for s in str(cfg["style_layers"]).split(",") if s.strip()]
        if not self.style_layers:
            raise UserError("setting 'style_layers': name at least one VGG-19 layer")
        bad = [n for n in self.style_layers if n not in LAYER_INDEX]
        if bad:
            raise UserError(f"setting 'style_layers': unknown layer(s) {', '.join(bad)} "
                            "(use names like relu1_1, relu3_1)")
        self.layer_weights = parse_layer_weights(self.style_layers, cfg["style_layer_weights"])
        self.content_layer = str(cfg["content_layer"])
        self.size = int(cfg["size"])
        self.preserve_colors = bool(cfg["preserve_colors"])
        self.use_lbfgs = cfg["optimizer"] == "lbfgs"
        self.mixed = bool(cfg["mixed_precision"]) and self.device.type == "cuda"
        self.range_weight = float(cfg["range_weight"])
        self.cw, self.sw, self.tw = (float(cfg["content_weight"]), float(cfg["style_weight"]),
                                     float(cfg["tv_weight"]))

        # Images first (cheap to fail on a bad path before loading VGG).
        self.content_full = load_image(cfg["content"], self.size, "content").to(self.device)
        style_side = max(16, round(self.size * float(cfg["style_scale"])))
        self.styles_full = [load_image(p, style_side, "style").to(self.device)
                            for p in style_paths]
        self.vgg = load_vgg(self.style_layers + [self.content_layer], cfg.get("vgg_weights"),
                            self.device, pooling=str(cfg["pooling"]))

        self.sizes = scale_sizes(self.size, int(cfg["scales"]))
        self.budgets = split_iterations(int(cfg["iterations"]), len(self.sizes))
        self.iteration = 0
        self.evaluations = 0
        self.scale = -1
        self.iter_in_scale = 0
        with self._no_autotune():
            self._enter_scale(0, None)

    @contextlib.contextmanager
    def _no_autotune(self):
        """cuDNN's heuristic algorithm choice instead of timing every shape (see above)."""
        before = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = False
        try:
            yield
        finally:
            torch.backends.cudnn.benchmark = before

    # -- scales ------------------------------------------------------------------------------
    @torch.no_grad()
    def _enter_scale(self, index: int, start: torch.Tensor | None) -> None:
        """Set up targets, image and optimiser for scale ``index``."""
        self.scale, self.iter_in_scale = index, 0
        side = self.sizes[index]
        content = resize_tensor(self.content_full, side)
        self.content_rgb = content
        style_side = lambda s: max(16, round(max(s.shape[-2:]) * side / self.size))  # noqa: E731
        styles = [resize_tensor(s, style_side(s)) for s in self.styles_full]
        if self.preserve_colors:
            styles = [match_luminance(s, content) for s in styles]
            content = luminance(content)
        self.content_input = content
        with self._autocast():
            self.content_target = self.vgg(content)[self.content_layer].detach().float()
            grams = [{n: gram_matrix(f) for n, f in self.vgg(s).items() if n in self.layer_weights}
                     for s in styles]
        self.style_grams = blended_grams(grams, self.blend)
        if start is None:
            if self.config["init"] == "noise":
                g = torch.Generator().manual_seed(int(self.config["seed"]))
                start = torch.rand(content.shape, generator=g).to(self.device)
            else:
                start = content.clone()
        else:
            start = F.interpolate(start, size=content.shape[-2:], mode="bicubic",
                                  align_corners=False).clamp(0, 1)
        self.image = start.detach().clone().contiguous().requires_grad_(True)
        self.best_image = self.image.detach().clone()
        self.best_loss = torch.full((), float("inf"), device=self.device)
        if self.use_lbfgs:
            # One iteration per engine step; history kept across steps.
            history = 50 if content.numel() <= 3 * 1024 * 1024 else 20
            if self.config["line_search"]:
                # The strong-Wolfe search decides on values: host reads are inherent.
                self.opt = torch.optim.LBFGS([self.image], lr=1.0, max_iter=1,
                                             history_size=history, line_search_fn="strong_wolfe")
            else:
                self.opt = DeviceLBFGS(self.image, lr=1.0, history_size=history)
        else:
            self.opt = torch.optim.Adam([self.image], lr=float(self.config["lr"]))

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.mixed)

    # -- the loss ----------------------------------------------------------------------------
    def losses(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Weighted content, style and TV terms and their sum for ``image`` (with grads)."""
        with self._autocast():
            feats = self.vgg(image)
        c = self.cw * content_loss(feats[self.content_layer], self.content_target)
        s = self.sw * style_loss(feats, self.style_grams, self.layer_weights)
        t = self.tw * tv_loss(image)
        return {"loss": c + s + t, "content": c, "style": s, "tv": t}

    def _closure(self) -> torch.Tensor:
        self.opt.zero_grad(set_to_none=True)
        terms = self.losses(self.image)
        total = terms["loss"]
        if self.use_lbfgs and self.range_weight > 0:
            # L-BFGS is not clamped (a clamp breaks its curvature pairs); a smooth penalty
            # on pixels outside [0, 1] keeps the saved (clamped) image the optimised one.
            x = self.image
            total = total + self.range_weight * ((x - 1).relu().square().mean()
                                                 + (-x).relu().square().mean())
        total.backward()
        self.evaluations += 1
        with torch.no_grad():
            # Keep the best image of this scale; torch.where avoids a host sync.
            loss = total.detach()
            better = loss < self.best_loss
            self.best_loss = torch.where(better, loss, self.best_loss)
            self.best_image = torch.where(better, self.image.detach(), self.best_image)
        self._last = {k: v.detach() for k, v in terms.items()}
        return total

    def train_step(self, real: None = None) -> dict[str, torch.Tensor]:
        # The engine may run steps under bf16 autocast; this job chooses its own precision
        # (``mixed_precision``): L-BFGS and the Gram targets want fp32.
        with torch.autocast(self.device.type, enabled=False), self._no_autotune():
            if self.iter_in_scale >= self.budgets[self.scale] and self.scale < len(self.sizes) - 1:
                self._enter_scale(self.scale + 1, self.best_image)
            if self.use_lbfgs:
                # One iteration: one loss evaluation (more with the line search).
                self.opt.step(self._closure)
            else:
                self._closure()
                self.opt.step()
                with torch.no_grad():
                    self.image.clamp_(0, 1)
        self.iteration += 1
        self.iter_in_scale += 1
        return dict(self._last)

    # -- images ------------------------------------------------------------------------------
    def _finish(self, image: torch.Tensor) -> torch.Tensor:
        image = image.detach().float().clamp(0, 1)
        if self.preserve_colors:
            image = combine_luminance(image, self.content_full)
        return image

    @torch.no_grad()
    def preview(self) -> torch.Tensor:
        return self._finish(self.image) * 2 - 1

    @torch.no_grad()
    def result_image(self) -> torch.Tensor:
        """The best image so far in [0, 1], at the output size (upsampled if stopped early
        at a coarser scale)."""
        best = self.best_image if torch.isfinite(self.best_loss) else self.image.detach()
        if best.shape[-2:] != self.content_full.shape[-2:]:
            best = F.interpolate(best, size=self.content_full.shape[-2:], mode="bicubic",
                                 align_corners=False)
        return self._finish(best)

    def result(self) -> torch.Tensor:
        return self.result_image() * 2 - 1

    def status(self) -> dict[str, float]:
        return {"scale_px": float(self.sizes[self.scale]), "evaluations": float(self.evaluations)}

    # -- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"image": self.image.detach().cpu(), "best_image": self.best_image.cpu(),
                "best_loss": self.best_loss.cpu(), "scale": self.scale,
                "iteration": self.iteration, "iter_in_scale": self.iter_in_scale,
                "evaluations": self.evaluations,
                # L-BFGS history is dozens of image-sized tensors (GBs at 2048 px): not
                # saved; a resumed L-BFGS rebuilds it in a few iterations.
                "optimizer": None if self.use_lbfgs else self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        scale = int(state["scale"])
        if not 0 <= scale < len(self.sizes):
            raise ValueError(f"saved scale {scale} does not exist for size {self.size}")
        with self._no_autotune():
            self._enter_scale(scale, None)
        image = state["image"].to(self.device)
        if image.shape != self.image.shape:
            raise ValueError(f"saved image is {tuple(image.shape)}, this job makes "
                             f"{tuple(self.image.shape)}")
        with torch.no_grad():
            self.image.copy_(image)
        self.best_image = state["best_image"].to(self.device)
        self.best_loss = state["best_loss"].to(self.device)
        if state.get("optimizer") is not None and not self.use_lbfgs:
            self.opt.load_state_dict(state["optimizer"])
        self.iteration = int(state["iteration"])
        self.iter_in_scale = int(state["iter_in_scale"])
        self.evaluations = int(state["evaluations"])
