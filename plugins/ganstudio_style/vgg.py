"""VGG-19 feature extractor for perceptual losses, and where its weights come from.

The architecture is torchvision's ``vgg19`` (only the convolutional trunk
``features`` is used). Weights come from, in order:

1. an explicit file (the ``vgg_weights`` setting): a
   ``state_dict`` with torchvision's key names (``features.N.weight`` ...);
   ``classifier.*`` keys are ignored, a features-only file is fine;
2. torchvision's ImageNet file in the torch hub cache
   (``torch.hub.get_dir()/checkpoints/vgg19-dcbb9e9d.pth``).

Nothing is downloaded implicitly: :func:`download_vgg_weights` is the one
download path (the studio offers it with a progress bar); offline it fails
with a message naming the file and the folder to put it in.
"""
from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
import torch.nn as nn

from ganstudio.core.checkpoints import load_weights_file
from ganstudio.core.errors import UserError

VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
VGG19_FILE = "vgg19-dcbb9e9d.pth"
VGG19_SIZE_MB = 548

# ImageNet statistics the VGG weights were trained with (inputs in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision's vgg19 "E" configuration: channels per conv, "M" = max-pool.
_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
        512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]


def _layer_names() -> list[str]:
    """Names of ``features`` modules in order: conv1_1, relu1_1, ..., pool5."""
    names, block, idx = [], 1, 1
    for v in _CFG:
        if v == "M":
            names.append(f"pool{block}")
            block, idx = block + 1, 1
        else:
            names += [f"conv{block}_{idx}", f"relu{block}_{idx}"]
            idx += 1
    return names


LAYER_NAMES = _layer_names()
LAYER_INDEX = {name: i for i, name in enumerate(LAYER_NAMES)}
CONV_INDICES = [i for i, n in enumerate(LAYER_NAMES) if n.startswith("conv")]


def _expected_shapes() -> dict[str, tuple[int, ...]]:
    shapes, c_in, i = {}, 3, 0
    for v in _CFG:
        if v == "M":
            i += 1
            continue
        shapes[f"features.{i}.weight"] = (v, c_in, 3, 3)
        shapes[f"features.{i}.bias"] = (v,)
        c_in, i = v, i + 2
    return shapes


EXPECTED_SHAPES = _expected_shapes()


class VGGWeightsMissing(UserError):
    """No VGG-19 weights file could be found (offer the download or a path).

    Carries the facts as data (``file``, ``size_mb``, ``url``, ``folder``) so each
    face can word its own advice; the message itself names no command-line flag
    and no button, only the ``vgg_weights`` setting both faces have.
    """

    def __init__(self, message: str = ""):
        self.file = VGG19_FILE
        self.size_mb = VGG19_SIZE_MB
        self.url = VGG19_URL
        self.folder = hub_weights_path().parent
        super().__init__(message or missing_weights_message())


def hub_weights_path() -> Path:
    """Where torchvision keeps (or would keep) the ImageNet VGG-19 file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE


def missing_weights_message() -> str:
    """Face-neutral: what is needed and where it goes (the setting, no flag, no button)."""
    return (f"VGG-19 ImageNet weights are needed for style transfer: put {VGG19_FILE} "
            f"({VGG19_SIZE_MB} MB, from {VGG19_URL}) in {hub_weights_path().parent}, "
            "or give a local VGG-19 weights file (setting vgg_weights)")


@dataclass(frozen=True)
class WeightsStatus:
    """Whether VGG-19 weights are available: ``path`` when found; otherwise ``problem``
    (a face-neutral sentence) and ``downloadable`` (True when the missing file is
    torchvision's cached one, which :func:`download_vgg_weights` can fetch)."""

    path: Path | None
    problem: str = ""
    downloadable: bool = False

    @property
    def found(self) -> bool:
        return self.path is not None


def weights_status(explicit: str | os.PathLike | None = None) -> WeightsStatus:
    """:func:`find_weights` as data, for a face that shows the state before a job starts."""
    try:
        return WeightsStatus(find_weights(explicit))
    except VGGWeightsMissing as e:
        return WeightsStatus(None, str(e), downloadable=True)
    except UserError as e:
        return WeightsStatus(None, str(e), downloadable=False)


def find_weights(explicit: str | os.PathLike | None = None) -> Path:
    """The weights file to use, or raise a UserError saying what is needed."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise UserError(f"VGG weights file not found: {path}")
        return path
    cached = hub_weights_path()
    if cached.is_file():
        return cached
    raise VGGWeightsMissing(missing_weights_message())


def needed_convs(last_layer: str) -> list[int]:
    """Indices of the conv layers up to and including ``last_layer``."""
    last = LAYER_INDEX[last_layer]
    return [i for i in CONV_INDICES if i <= last]


def check_state_dict(state: dict, path: str | os.PathLike, last_layer: str = "relu5_1"
                     ) -> dict[str, torch.Tensor]:
    """Return the ``features.*`` tensors needed up to ``last_layer``, or raise UserError.

    Refuses keys that are not VGG-19's (``features.*`` / ``classifier.*``) and
    tensors whose shapes differ from torchvision's vgg19.
    """
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    foreign = [k for k in state if not (k.startswith("features.") or k.startswith("classifier."))]
    if foreign:
        shown = ", ".join(sorted(foreign)[:4]) + (" ..." if len(foreign) > 4 else "")
        raise UserError(f"{path} is not a VGG-19 state_dict: unexpected keys {shown} "
                        "(expected torchvision's names such as features.0.weight)")
    bad_shape = []
    for key, value in state.items():
        if key.startswith("features."):
            want = EXPECTED_SHAPES.get(key)
            if want is None:
                raise UserError(f"{path} is not a VGG-19 state_dict: unexpected key {key}")
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != want:
                got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                bad_shape.append(f"{key} is {got}, VGG-19 has {want}")
    if bad_shape:
        raise UserError(f"{path} does not match VGG-19: " + "; ".join(bad_shape[:3])
                        + (" ..." if len(bad_shape) > 3 else ""))
    out = {}
    missing = []
    for i in needed_convs(last_layer):
        for part in ("weight", "bias"):
            key = f"features.{i}.{part}"
            if key not in state:
                missing.append(key)
            else:
                out[key] = state[key].float()
    if missing:
        raise UserError(f"{path} lacks VGG-19 weights needed up to {last_layer}: "
                        + ", ".join(missing[:4]) + (" ..." if len(missing) > 4 else ""))
    return out


class VGGFeatures(nn.Module):
    """VGG-19's trunk up to the deepest requested layer; returns the named activations.

    Input: images in [0, 1] (N, 3, H, W); ImageNet normalisation happens here.
    ReLUs are not in-place, so a captured conv output is never overwritten.
    ``pooling="avg"`` swaps max-pooling for average pooling (Gatys et al.
    report smoother results with it).
    """

    def __init__(self, layers: Iterable[str], weights: dict[str, torch.Tensor] | None = None,
                 pooling: str = "max"):
        super().__init__()
        layers = list(dict.fromkeys(layers))
        unknown = [n for n in layers if n not in LAYER_INDEX]
        if unknown:
            raise UserError(f"unknown VGG-19 layer(s) {', '.join(unknown)} "
                            f"(known: {', '.join(n for n in LAYER_NAMES if n.startswith('relu'))})")
        self.layers = layers
        last = max(LAYER_INDEX[n] for n in layers)
        mods: list[nn.Module] = []
        c_in = 3
        for i, name in enumerate(LAYER_NAMES[:last + 1]):
            if name.startswith("conv"):
                c_out = EXPECTED_SHAPES[f"features.{i}.weight"][0]
                mods.append(nn.Conv2d(c_in, c_out, 3, padding=1))
                c_in = c_out
            elif name.startswith("relu"):
                mods.append(nn.ReLU(inplace=False))
            else:
                mods.append(nn.AvgPool2d(2, 2) if pooling == "avg" else nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*mods)
        if weights is not None:
            own = {k: v for k, v in weights.items() if int(k.split(".")[1]) <= last}
            self.load_state_dict(own, strict=True)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self._wanted = {LAYER_INDEX[n]: n for n in layers}
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (x - self.mean) / self.std
        out = {}
        for i, mod in enumerate(self.features):
            x = mod(x)
            if i in self._wanted:
                out[self._wanted[i]] = x
        return out


def load_vgg(layers: Sequence[str], weights_path: str | os.PathLike | None = None,
             device: torch.device | str = "cpu", pooling: str = "max") -> VGGFeatures:
    """A :class:`VGGFeatures` with checked weights on ``device``; UserError if unusable."""
    path = find_weights(weights_path)
    state = load_weights_file(path, map_location="cpu")
    deepest = max((n for n in layers), key=lambda n: LAYER_INDEX.get(n, -1))
    if deepest not in LAYER_INDEX:
        raise UserError(f"unknown VGG-19 layer '{deepest}'")
    weights = check_state_dict(state, path, deepest)
    return VGGFeatures(layers, weights, pooling=pooling).to(device)


class DownloadFailed(UserError):
    """The download did not complete: ``reason``, ``url`` and the ``folder`` to put the
    file in by hand, as data for each face's own advice."""

    def __init__(self, reason: str, url: str, folder: Path, message: str):
        self.reason, self.url, self.folder = reason, url, folder
        super().__init__(message)


def download_vgg_weights(progress: Callable[[int, int], None] | None = None,
                         should_cancel: Callable[[], bool] | None = None,
                         url: str = VGG19_URL, dest: str | os.PathLike | None = None,
                         timeout: float = 30.0) -> Path:
    """Download torchvision's VGG-19 file into the torch hub cache (or ``dest``).

    Writes to a temporary file, checks the SHA-256 prefix in the file name
    (as torch.hub does), then renames. ``progress(done_bytes, total_bytes)``
    is called as data arrives (total 0 if unknown). Raises UserError with the
    file name and target folder when offline or on any failure.
    """
    target = Path(dest) if dest else hub_weights_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    expected_prefix = target.stem.rsplit("-", 1)[-1] if "-" in target.stem else ""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as f:
            total = int(resp.headers.get("Content-Length") or 0)
            done = 0
            while True:
                if should_cancel is not None and should_cancel():
                    raise UserError("download cancelled")
                chunk = resp.read(1 << 20)
                if not chunk:
                    break
                f.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        if expected_prefix and not digest.hexdigest().startswith(expected_prefix):
            raise UserError(f"the downloaded {target.name} is damaged (checksum mismatch); "
                            "try again")
        os.replace(tmp, target)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or e
        raise DownloadFailed(
            str(reason), url, target.parent,
            f"could not download {VGG19_FILE} from {url} ({reason}). Download it elsewhere "
            f"and put it in {target.parent}, or give a local VGG-19 weights file "
            "(setting vgg_weights)") from None
    finally:
        if tmp.exists():
            try:
                tmp.unlink()
            except OSError:
                pass
    return target


def random_vgg_state(last_layer: str = "relu5_1", seed: int = 0,
                     dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """A randomly initialised VGG-19 features state_dict up to ``last_layer`` (tests, demos).

    Random VGG features still give a working, if much less artistic, style
    transfer; real ImageNet weights are what make the results beautiful.
    """
    g = torch.Generator().manual_seed(seed)
    out = {}
    for i in needed_convs(last_layer):
        w_shape = EXPECTED_SHAPES[f"features.{i}.weight"]
        fan_in = w_shape[1] * 9
        out[f"features.{i}.weight"] = (torch.randn(w_shape, generator=g)
                                       * (2.0 / fan_in) ** 0.5).to(dtype)
        out[f"features.{i}.bias"] = torch.zeros(w_shape[0], dtype=dtype)
    return out
