"""Fast feed-forward style transfer (Johnson, Alahi and Fei-Fei, 2016).

A small image-transformation network learns one style from a folder of
content images with the same perceptual losses as the optimisation mode;
afterwards one forward pass stylizes any picture. Instance normalisation
(Ulyanov, Vedaldi and Lempitsky, 2016) and nearest-neighbour upsampling
followed by a convolution (against checkerboard artefacts) are used.

The model is trained by the engine like a GAN (kind ``"gan"``, data = the
content folder); the fixed "latents" of the live grid are fixed content
images, so the grid shows how they are stylized as training goes on.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ganstudio.core.config import Field
from ganstudio.core.errors import UserError
from ganstudio.core.model import GANModel

from .imaging import load_image, parse_numbers
from .losses import content_loss, gram_matrix, style_loss, tv_loss
from .vgg import LAYER_INDEX, load_vgg

MODEL_ID = "fast-style"
FIXED_CONTENT_MAX = 16  # images in the live grid (each one a full forward pass)


def schema() -> list[Field]:
    return [
        Field("style", "path", "", "The style image this network learns.", group="Style"),
        Field("style_size", "int", 0, "Long side of the style image in pixels (0: the "
              "training resolution).", min=0, max=4096, group="Style"),
        Field("resolution", "choice", 256, "Training crop size of the content images.",
              choices=[32, 64, 128, 256, 512], group="Data"),
        Field("channels", "choice", 3, "Colour images.", choices=[3], group="Data",
              advanced=True),
        Field("fit", "choice", "crop", "How non-square images become square.",
              choices=["crop", "pad"], group="Data"),
        Field("flip", "bool", True, "Random horizontal flips of the content images.",
              group="Data"),
        Field("batch_size", "int", 4, "Content images per step.", min=1, max=256),
        Field("lr", "float", 1e-3, "Adam learning rate.", min=1e-6, max=1.0),
        Field("content_weight", "float", 1.0, "Weight of the content loss.", min=0.0, max=1e12),
        Field("style_weight", "float", 1e5, "Weight of the style loss.", min=0.0, max=1e15),
        Field("tv_weight", "float", 1.0, "Weight of the total-variation loss.", min=0.0,
              max=1e12),
        Field("content_layer", "choice", "relu2_2", "VGG-19 content layer.",
              choices=["relu2_2", "relu3_2", "relu4_2"], group="Layers"),
        Field("style_layers", "str", "relu1_2,relu2_2,relu3_3,relu4_3", "VGG-19 style layers.",
              group="Layers", advanced=True),
        Field("style_layer_weights", "str", "", "Weight per style layer (empty: equal).",
              group="Layers", advanced=True),
        Field("width", "int", 32, "Channels of the first layer of the network (32 in the "
              "paper; 16 is faster).", min=4, max=256, group="Model"),
        Field("res_blocks", "int", 5, "Residual blocks.", min=1, max=16, group="Model"),
        Field("vgg_weights", "path", "", "VGG-19 weights file; empty: torchvision's ImageNet "
              "file in the torch cache.", group="Layers"),
        Field("seed", "int", 0, "Random seed.", min=0, max=2**31 - 1, advanced=True),
    ]


# -- the network --------------------------------------------------------------------------------
class _ConvIN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1, relu: bool = True):
        layers: list[nn.Module] = [nn.ReflectionPad2d(k // 2), nn.Conv2d(c_in, c_out, k, stride),
                                   nn.InstanceNorm2d(c_out, affine=True)]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class _Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(_ConvIN(c, c, 3), _ConvIN(c, c, 3, relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _Up(nn.Sequential):
    def __init__(self, c_in: int, c_out: int):
        super().__init__(nn.Upsample(scale_factor=2, mode="nearest"), _ConvIN(c_in, c_out, 3))


class TransformerNet(nn.Module):
    """Image in [0, 1] -> stylized image (about [0, 1]); any size (padded to a multiple of 4)."""

    def __init__(self, width: int = 32, res_blocks: int = 5):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            _ConvIN(3, w, 9), _ConvIN(w, 2 * w, 3, 2), _ConvIN(2 * w, 4 * w, 3, 2),
            *[_Residual(4 * w) for _ in range(res_blocks)],
            _Up(4 * w, 2 * w), _Up(2 * w, w),
            nn.ReflectionPad2d(4), nn.Conv2d(w, 3, 9))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # Always padded (by 0 when the size is a multiple of 4), never branched on the
        # size: an ONNX trace then keeps the padding for every height and width.
        ph, pw = (-h) % 4, (-w) % 4
        x = F.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > 4 else "replicate")
        return self.net(x)[..., :h, :w]


# -- the model the engine trains ----------------------------------------------------------------
class FastStyleModel(GANModel):
    def __init__(self, config: dict, image_shape, device):
        super().__init__(config, image_shape or (3, int(config["resolution"]),
                                                 int(config["resolution"])), device)
        cfg = self.config
        self.latent_dim = 0
        self.net = TransformerNet(int(cfg["width"]), int(cfg["res_blocks"])).to(self.device)
        fused = {"fused": True} if self.device.type == "cuda" else {}
        self.opt = torch.optim.Adam(self.net.parameters(), lr=float(cfg["lr"]), **fused)
        self.style_layers = [s.strip() for s in str(cfg["style_layers"]).split(",") if s.strip()]
        bad = [n for n in self.style_layers + [cfg["content_layer"]] if n not in LAYER_INDEX]
        if bad or not self.style_layers:
            raise UserError(f"setting 'style_layers': unknown or no layer(s) {', '.join(bad)} "
                            "(use names like relu1_2, relu3_3)")
        raw = str(cfg["style_layer_weights"]).strip()
        weights = parse_numbers(raw, "style_layer_weights") if raw else [1.0] * len(self.style_layers)
        if len(weights) != len(self.style_layers):
            raise UserError(f"setting 'style_layer_weights': {len(weights)} weight(s) for "
                            f"{len(self.style_layers)} style layers")
        self.layer_weights = dict(zip(self.style_layers, weights))
        self.data = None
        self.vgg = None  # loaded on first training use: applying a trained net needs no VGG

    def attach_data(self, images: Any) -> None:
        self.data = images
        self.prepare_losses()

    def prepare_losses(self) -> None:
        """Load VGG-19 and the style image's Gram targets (once)."""
        if self.vgg is not None:
            return
        cfg = self.config
        if not str(cfg.get("style") or "").strip():
            raise UserError("no style image given (setting 'style')")
        side = int(cfg["style_size"]) or int(self.image_shape[-1])
        style = load_image(cfg["style"], side, "style").to(self.device)
        self.vgg = load_vgg(self.style_layers + [cfg["content_layer"]], cfg.get("vgg_weights"),
                            self.device)
        with torch.no_grad():
            feats = self.vgg(style)
            self.style_grams = {n: gram_matrix(feats[n]) for n in self.style_layers}

    def train_step(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        self.prepare_losses()
        cfg = self.config
        x = (real.float() + 1) / 2
        self.opt.zero_grad(set_to_none=True)
        y = self.net(x)
        with torch.no_grad():
            target = self.vgg(x)[cfg["content_layer"]]
        feats = self.vgg(y)
        c = float(cfg["content_weight"]) * content_loss(feats[cfg["content_layer"]], target)
        s = float(cfg["style_weight"]) * style_loss(feats, self.style_grams, self.layer_weights)
        t = float(cfg["tv_weight"]) * tv_loss(y)
        loss = c + s + t
        loss.backward()
        self.opt.step()
        return {"loss": loss.detach(), "content": c.detach(), "style": s.detach(),
                "tv": t.detach()}

    def make_latents(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Fixed content images in [-1, 1]: from the training folder when attached
        (at most 16, so the live grid stays cheap), otherwise smooth random pictures."""
        _, h, w = self.image_shape
        if self.data is not None and len(self.data) > 0:
            k = min(n, FIXED_CONTENT_MAX, len(self.data))
            idx = torch.randperm(len(self.data), generator=generator)[:k]
            imgs = self.data.images.index_select(0, idx.to(self.data.images.device))
            return imgs.to(self.device).float().div(127.5).sub(1.0)
        coarse = torch.rand(n, 3, max(1, h // 8), max(1, w // 8), generator=generator)
        smooth = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
        return (smooth * 2 - 1).to(self.device)

    @torch.no_grad()
    def sample(self, z: torch.Tensor) -> torch.Tensor:
        y = self.net((z.to(self.device).float() + 1) / 2)
        return y.float().clamp(0, 1) * 2 - 1

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Declared for the engine (ModelSpec.learning_rates: ``{"lr": "net"}``)."""
        return {"net": self.opt}

    def trained_networks(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    def scale_learning_rates(self, factor: float) -> None:
        for group in self.opt.param_groups:
            group["lr"] *= factor

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        if "opt" in state:
            self.opt.load_state_dict(state["opt"])

    def generator_module(self) -> torch.nn.Module:
        return self.net


# -- applying a trained network ------------------------------------------------------------------
def stylize_tensor(net: TransformerNet, image: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) in [0, 1] -> stylized (1, 3, H, W) in [0, 1]."""
    device = next(net.parameters()).device
    return net(image.to(device)).float().clamp(0, 1)
