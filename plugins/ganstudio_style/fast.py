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

import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ganstudio.core.checkpoints import load_latest
from ganstudio.core.config import Field, resolve_config
from ganstudio.core.errors import CheckpointError, UserError
from ganstudio.core.model import GANModel
from ganstudio.core.runs import RunFolder

from .imaging import list_images, load_image, parse_numbers, save_image
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
def load_style_net(run_dir: str | os.PathLike, device: torch.device | str = "cpu",
                   warn: Callable[[Path, str], None] | None = None
                   ) -> tuple[TransformerNet, dict, int]:
    """(network, config, step) from the newest valid checkpoint of a fast-style run."""
    run = RunFolder(run_dir)
    info = run.read_info()
    if info.get("model_id") != MODEL_ID:
        raise UserError(f"{run.path} is a '{info.get('model_id')}' run, not a trained "
                        f"{MODEL_ID} network")
    loaded = load_latest(run.checkpoints_dir, map_location="cpu", on_skip=warn)
    if loaded is None:
        raise CheckpointError(f"no usable checkpoint in {run.checkpoints_dir}")
    path, state = loaded
    config = resolve_config(schema(), base=state.get("config") or info["config"])
    net = TransformerNet(int(config["width"]), int(config["res_blocks"]))
    try:
        net.load_state_dict(state["model"]["net"])
    except (KeyError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {path} does not hold a {MODEL_ID} network: "
                              f"{str(e).splitlines()[0]}") from None
    return net.to(device).eval(), config, int(state.get("step", 0))


@torch.no_grad()
def stylize_tensor(net: TransformerNet, image: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) in [0, 1] -> stylized (1, 3, H, W) in [0, 1]."""
    device = next(net.parameters()).device
    return net(image.to(device)).float().clamp(0, 1)


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[tuple[Path, Path | None]]:
    """Files and folders -> [(image file, folder it came from or None)]; UserError if none."""
    found: list[tuple[Path, Path | None]] = []
    for item in inputs:
        p = Path(item).expanduser()
        if p.is_dir():
            files = list_images(p)
            if not files:
                raise UserError(f"no images found in folder {p}")
            found += [(f, p) for f in files]
        elif p.is_file():
            found.append((p, None))
        else:
            raise UserError(f"input not found: {p}")
    return found


def apply_to_paths(net: TransformerNet, inputs: Iterable[str | os.PathLike],
                   out: str | os.PathLike, size: int | None = None,
                   progress: Callable[[int, int, Path], None] | None = None,
                   as_folder: bool = False) -> tuple[list[Path], float]:
    """Stylize files / folders. One input file and ``out`` with an image suffix: write that
    file; otherwise (or with ``as_folder``) ``out`` is a folder (sub-folders of input
    folders are mirrored).
    Returns the written paths and the mean milliseconds per image (network only)."""
    items = expand_inputs(inputs)
    out = Path(out).expanduser()
    single = (not as_folder and len(items) == 1 and items[0][1] is None
              and out.suffix != "")
    if not single and out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a folder (several images need a folder)")
    device = next(net.parameters()).device
    stylize_tensor(net, torch.zeros(1, 3, 16, 16))  # warm-up: one-time set-up is not timed
    written, net_seconds = [], 0.0
    for i, (path, root) in enumerate(items):
        image = load_image(path, size, "input")
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        result = stylize_tensor(net, image)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        net_seconds += time.perf_counter() - t0
        if single:
            target = out
        else:
            rel = path.relative_to(root) if root is not None else Path(path.name)
            target = (out / rel).with_suffix(".png")
        written.append(save_image(result, target))
        if progress is not None:
            progress(i + 1, len(items), target)
    return written, 1000.0 * net_seconds / max(1, len(items))
