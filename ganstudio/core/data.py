"""Datasets from a folder of images: scan, validate, decode once, cache, keep on device.

``load_dataset`` walks a folder recursively, decodes every image in parallel
(EXIF orientation applied; grayscale, RGBA, palette, CMYK and 16-bit images
converted), makes it square by centre-crop or padding, resizes it to the
training resolution and returns one uint8 tensor (N, C, H, W) with a report
that names every skipped file and why. The prepared array is cached on disk
under a key made of the folder's file list (names, sizes, modification times)
and the preparation settings, so reopening the same folder is a file read.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps

from .errors import DatasetError

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".jpe", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
#: Images with more pixels than this are refused (decompression-bomb guard). Pillow's
#: own guard (``Image.MAX_IMAGE_PIXELS``, about 89 million pixels) applies as well.
MAX_PIXELS = 16384 * 16384
#: Images whose short side is below this are skipped as unsuitable.
MIN_SIDE = 8
#: Images above this many pixels are decoded one at a time: eight decoder threads
#: each holding a 60-megapixel photo would need gigabytes at once.
BIG_IMAGE_PIXELS = 24_000_000
CACHE_FORMAT = 3

ImageFile.LOAD_TRUNCATED_IMAGES = False

# ``warnings.catch_warnings`` changes process-wide state; threads entering and leaving it
# in an interleaved order can leave a filter installed for good. Opening (a header
# read) therefore happens under this lock; decoding does not.
_OPEN_LOCK = threading.Lock()
_BIG_IMAGE_LOCK = threading.Lock()


def display_path(path: str | os.PathLike) -> str:
    """``path`` as printable text: undecodable bytes in a file name become ``\\xNN``.

    File names on Linux may be any bytes; Python keeps the odd ones as lone
    surrogates, which cannot be printed or written to a UTF-8 log.
    """
    raw = os.fsencode(os.fspath(path))
    return raw.decode("utf-8", "backslashreplace")


@dataclass
class SkippedFile:
    path: str
    reason: str


@dataclass
class DatasetReport:
    folder: str
    resolution: int
    channels: int
    fit: str
    used: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)
    converted: list[tuple[str, str]] = field(default_factory=list)
    from_cache: bool = False
    seconds: float = 0.0
    cache_file: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "folder": self.folder, "resolution": self.resolution, "channels": self.channels,
            "fit": self.fit, "images": self.used,
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "converted": [{"path": p, "note": n} for p, n in self.converted],
            "from_cache": self.from_cache, "seconds": round(self.seconds, 3),
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "DatasetReport":
        rep = cls(d["folder"], int(d["resolution"]), int(d["channels"]), d.get("fit", "crop"))
        rep.used = int(d.get("images", 0))
        rep.skipped = [SkippedFile(s["path"], s["reason"]) for s in d.get("skipped", [])]
        rep.converted = [(c["path"], c["note"]) for c in d.get("converted", [])]
        rep.warnings = [str(w) for w in d.get("warnings", [])]
        return rep

    def summary(self) -> str:
        src = " (from cache)" if self.from_cache else ""
        return (f"{self.used} images at {self.resolution}x{self.resolution}, "
                f"{self.channels} channel(s), {len(self.skipped)} skipped{src}")

    def lines(self, limit: int | None = None) -> list[str]:
        """The summary, then one line per warning, skipped file and converted file.

        ``limit`` caps the skipped and the converted lines (each) and adds an
        "... and N more" line; the run's events.log always gets every line.
        """
        out = [self.summary()]
        out += [f"warning: {w}" for w in self.warnings]

        def capped(items: list[str]) -> list[str]:
            if limit is None or len(items) <= limit:
                return items
            return items[:limit] + [f"... and {len(items) - limit} more"]

        out += capped([f"skipped {s.path}: {s.reason}" for s in self.skipped])
        out += capped([f"converted {p}: {n}" for p, n in self.converted])
        return out


def scan_folder(folder: str | os.PathLike) -> tuple[list[Path], list[SkippedFile]]:
    """All image files below ``folder`` (sorted), and files skipped while scanning.

    Symbolic links to folders are not followed (no loops); links to files are
    followed; broken and looping links, unreadable entries and things that are
    not regular files (a pipe named ``x.png`` would block a reader forever) are
    reported with the reason.
    """
    root = Path(folder).expanduser()
    if not root.exists():
        raise DatasetError(f"image folder not found: {root}")
    if not root.is_dir():
        raise DatasetError(f"not a folder: {root}")
    files: list[Path] = []
    skipped: list[SkippedFile] = []

    def onerror(err: OSError) -> None:
        skipped.append(SkippedFile(display_path(err.filename or "?"),
                                   f"cannot read folder: {err.strerror or err}"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        base = Path(dirpath)
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            if os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            p = base / name
            reason = _entry_problem(p)
            if reason:
                skipped.append(SkippedFile(display_path(p), reason))
                continue
            files.append(p)
    return files, skipped


def _entry_problem(p: Path) -> str:
    """Why the directory entry ``p`` cannot be an image file, or "" when it may be one."""
    try:
        st = p.stat()  # follows a symbolic link to its target
    except OSError as e:
        link = p.is_symlink()
        if e.errno == errno.ELOOP:
            return "symbolic link loop"
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return "broken symbolic link (its target does not exist)" if link else \
                "file disappeared while scanning"
        if e.errno in (errno.EACCES, errno.EPERM):
            return "permission denied"
        return f"cannot read: {e.strerror or e}"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (a device, pipe or socket named like an image)"
    return ""


def folder_fingerprint(files: Iterable[Path], root: Path, extra: dict) -> str:
    """A key that changes when any file is added, removed, resized or touched."""
    h = hashlib.sha256()
    h.update(json.dumps(extra, sort_keys=True).encode())
    # String slicing instead of Path.relative_to: the same text, a third of the time
    # (10,000 files: the reopen of a prepared folder is mostly this loop and the scan).
    prefix = os.path.join(str(root), "")
    for p in files:
        try:
            text = str(p)
            rel = text[len(prefix):] if text.startswith(prefix) else str(p.relative_to(root))
            st = os.stat(text)
            h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n"
                     .encode("utf-8", "surrogateescape"))
        except OSError:
            h.update(f"{p}\0missing\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:32]


def _to_mode(img: Image.Image, channels: int, notes: list[str]) -> Image.Image:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        top = float(arr.max()) if arr.size else 0.0
        if mode.startswith("I;16"):
            hi = 65535.0
        elif mode == "F" and top <= 1.0:
            hi = 1.0                    # floating-point pictures usually hold 0..1
        elif top <= 255:
            hi = 255.0
        else:
            hi = 65535.0 if top <= 65535 else top
        arr = np.clip(arr / hi * 255.0, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, mode="L")
        notes.append(f"{mode} converted to 8-bit")
    elif mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        notes.append("palette converted")
    elif mode == "CMYK":
        img = img.convert("RGB")
        notes.append("CMYK converted to RGB")
    elif mode in ("LA", "PA"):
        img = img.convert("RGBA")
    elif mode not in ("L", "RGB", "RGBA"):
        img = img.convert("RGB")
        notes.append(f"{mode} converted to RGB")
    if img.mode == "RGBA":
        # Transparent areas become white: the usual page an artist's cut-out sits on.
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        img = background
        notes.append("transparency flattened on white")
    if channels == 1 and img.mode != "L":
        img = img.convert("L")
    elif channels == 3 and img.mode != "RGB":
        img = img.convert("RGB")
    return img


def _square(img: Image.Image, fit: str, channels: int) -> Image.Image:
    w, h = img.size
    if w == h:
        return img
    if fit == "pad":
        side = max(w, h)
        fill = 0 if channels == 1 else (0, 0, 0)
        canvas = Image.new(img.mode, (side, side), fill)
        canvas.paste(img, ((side - w) // 2, (side - h) // 2))
        return canvas
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return img.crop((left, top, left + side, top + side))


def prepare_image(path: Path, resolution: int, channels: int, fit: str
                  ) -> tuple[np.ndarray | None, str, list[str]]:
    """Decode one file to (C, R, R) uint8; or (None, reason, []) if it cannot be used.

    Never raises: whatever a damaged or hostile file makes the decoder do becomes
    a reason in the dataset report.
    """
    notes: list[str] = []
    try:
        return _prepare_image(path, resolution, channels, fit, notes)
    except Image.DecompressionBombError as e:
        return None, f"image too large (decompression bomb guard): {e}", []
    except Image.DecompressionBombWarning as e:
        return None, f"image too large (decompression bomb guard): {e}", []
    except PermissionError:
        return None, "permission denied", []
    except FileNotFoundError:
        return None, "file disappeared while reading", []
    except IsADirectoryError:
        return None, "not a regular file (a folder)", []
    except Image.UnidentifiedImageError:
        return None, "not an image, or a format that cannot be read", []
    except MemoryError:
        return None, "not enough memory to decode this image", []
    except OSError as e:
        msg = str(e) or e.__class__.__name__
        if "truncated" in msg.lower() or "broken data stream" in msg.lower():
            return None, f"truncated or damaged image ({msg})", []
        return None, f"cannot decode: {msg}", []
    except Exception as e:  # noqa: BLE001 - decoders raise all sorts on hostile input
        return None, f"cannot decode: {e.__class__.__name__}: {e}", []


def _prepare_image(path: Path, resolution: int, channels: int, fit: str, notes: list[str]
                   ) -> tuple[np.ndarray | None, str, list[str]]:
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        return None, "not a regular file (a device, pipe or socket named like an image)", notes
    if st.st_size == 0:
        return None, "empty file (0 bytes)", notes
    with _OPEN_LOCK, warnings.catch_warnings():
        # Pillow warns above Image.MAX_IMAGE_PIXELS and raises at twice that; both refuse.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        img = Image.open(path)
    with img:
        w, h = img.size
        if w * h > MAX_PIXELS:
            return None, (f"image too large ({w}x{h} pixels; the limit of {MAX_PIXELS:,} "
                          "pixels guards against decompression bombs)"), notes
        if min(w, h) < MIN_SIDE:
            return None, f"image too small ({w}x{h}; at least {MIN_SIDE} px per side)", notes
        if getattr(img, "n_frames", 1) > 1:
            notes.append("animated: first frame used")
            img.seek(0)
        if img.format == "JPEG" and img.mode in ("RGB", "L", "CMYK"):
            # Decode at a reduced scale when the file is much larger than
            # needed: a 4000 px photo decodes ~8x faster for a 64 px set.
            img.draft(img.mode, (resolution * 2, resolution * 2))
        big = img.size[0] * img.size[1] > BIG_IMAGE_PIXELS
        if big:
            with _BIG_IMAGE_LOCK:
                img.load()
                arr = _finish(img, resolution, channels, fit, notes)
        else:
            img.load()
            arr = _finish(img, resolution, channels, fit, notes)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return np.ascontiguousarray(arr.transpose(2, 0, 1)), "", notes


def _finish(img: Image.Image, resolution: int, channels: int, fit: str,
            notes: list[str]) -> np.ndarray:
    """Orientation, colour mode, square, size: the decoded image as (R, R[, C]) uint8."""
    orientation = _orientation(img)
    if 2 <= orientation <= 8:  # 1 is upright; other values are not orientations
        try:
            img = ImageOps.exif_transpose(img)
            notes.append(f"turned upright by its EXIF orientation ({orientation})")
        except Exception as e:  # noqa: BLE001 - damaged EXIF must not lose a good picture
            notes.append(f"EXIF orientation unreadable ({e.__class__.__name__}); used as stored")
    img = _to_mode(img, channels, notes)
    img = _square(img, fit, channels)
    img = img.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.uint8)


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1) or 1)
    except Exception:  # noqa: BLE001
        return 1


def default_cache_dir() -> Path:
    env = os.environ.get("GANSTUDIO_CACHE_DIR")
    if env:
        return Path(env)
    try:
        import platformdirs
        base = Path(platformdirs.user_cache_dir("ganstudio", appauthor=False))
    except ImportError:  # minimal installs (e.g. a bare GPU server)
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ganstudio"
    return base / "datasets"


def load_dataset(folder: str | os.PathLike, resolution: int, channels: int = 3, fit: str = "crop",
                 *, cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
                 workers: int | None = None,
                 progress: Callable[[int, int], None] | None = None
                 ) -> tuple[torch.Tensor, DatasetReport]:
    """Prepare every usable image below ``folder``; return (uint8 N,C,R,R tensor, report).

    Raises :class:`DatasetError` when the folder is missing, has no image
    files, or none of them can be used. ``progress(done, total)`` is called
    from the calling thread while decoding.
    """
    if channels not in (1, 3):
        raise DatasetError(f"channels must be 1 or 3, not {channels}")
    if fit not in ("crop", "pad"):
        raise DatasetError(f"fit must be 'crop' or 'pad', not {fit!r}")
    t0 = time.perf_counter()
    root = Path(folder).expanduser().resolve()
    files, skipped = scan_folder(root)
    report = DatasetReport(display_path(root), int(resolution), int(channels), fit,
                           skipped=list(skipped))
    if not files:
        extra = ""
        if skipped:
            extra = " (" + "; ".join(f"{Path(s.path).name}: {s.reason}" for s in skipped[:5]) + ")"
        raise DatasetError(f"no usable image files (PNG, JPEG, WebP, BMP, TIFF, GIF) found in "
                           f"{display_path(root)}{extra}")

    key = folder_fingerprint(files, root, {"r": resolution, "c": channels, "fit": fit,
                                           "v": CACHE_FORMAT})
    cdir = Path(cache_dir) if cache_dir else default_cache_dir()
    npy, meta = cdir / f"{key}.npy", cdir / f"{key}.json"
    if use_cache and npy.exists() and meta.exists():
        try:
            arr = np.load(npy, mmap_mode="r")
            info = json.loads(meta.read_text())
            cached = DatasetReport.from_dict(info)
            cached.from_cache = True
            cached.folder = display_path(root)
            cached.cache_file = str(npy)
            cached.seconds = time.perf_counter() - t0
            tensor = torch.from_numpy(np.array(arr))  # a writable copy in memory
            if tensor.shape[0] == cached.used and tensor.shape[1:] == (channels, resolution, resolution):
                return tensor, cached
        except Exception:
            pass  # a damaged cache entry is simply rebuilt

    total = len(files)
    out = np.empty((total, channels, resolution, resolution), dtype=np.uint8)
    ok = np.zeros(total, dtype=bool)
    workers = workers or min(8, (os.cpu_count() or 2))

    def work(i: int):
        try:
            return i, prepare_image(files[i], resolution, channels, fit)
        except BaseException as e:  # noqa: BLE001 - one file must never stop the whole set
            if isinstance(e, KeyboardInterrupt):
                raise
            return i, (None, f"cannot decode: {e.__class__.__name__}: {e}", [])

    done = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, (arr, reason, notes) in pool.map(work, range(total)):
            done += 1
            if arr is None:
                report.skipped.append(SkippedFile(display_path(files[i]), reason))
            else:
                out[i] = arr
                ok[i] = True
                if notes:
                    report.converted.append((display_path(files[i]), "; ".join(notes)))
            if progress and (done % 64 == 0 or done == total):
                progress(done, total)
    report.used = int(ok.sum())
    if report.used == 0:
        reasons = "; ".join(f"{Path(s.path).name}: {s.reason}" for s in report.skipped[:5])
        if len(report.skipped) > 5:
            reasons += f"; and {len(report.skipped) - 5} more"
        raise DatasetError(f"none of the {total} image files in {display_path(root)} could be "
                           f"used ({reasons})")
    if report.used == 1:
        report.warnings.append("only one usable image: the model can only learn to copy it")
    elif report.used < 16:
        report.warnings.append(f"only {report.used} usable images: expect the model to "
                               "memorise them; a few hundred or more give variety")
    data = out[ok] if report.used < total else out
    report.seconds = time.perf_counter() - t0
    if use_cache:
        _write_cache(cdir, npy, meta, data, report)
    return torch.from_numpy(data), report


_CACHE_TEMP_RE = re.compile(r"^[0-9a-f]{32}\.npy\.(\d+)\.tmp\.npy$")


def _write_cache(cdir: Path, npy: Path, meta: Path, data: np.ndarray,
                 report: DatasetReport) -> None:
    """Array and report, each written to a temp file and renamed (a kill leaves no torn
    entry); temp files of writers that died are removed; errors only skip caching."""
    from .checkpoints import _pid_alive
    tmp = npy.with_name(f"{npy.name}.{os.getpid()}.tmp.npy")
    try:
        cdir.mkdir(parents=True, exist_ok=True)
        for old in cdir.iterdir():
            m = _CACHE_TEMP_RE.match(old.name)
            if m and not _pid_alive(int(m.group(1))):
                try:
                    old.unlink()
                except OSError:
                    pass
        np.save(tmp, data)
        os.replace(tmp, npy)
        tmp_meta = meta.with_name(f"{meta.name}.{os.getpid()}.tmp")
        tmp_meta.write_text(json.dumps(report.to_dict()))
        os.replace(tmp_meta, meta)
        report.cache_file = str(npy)
    except OSError:
        # caching is an optimisation: a read-only or full cache folder is fine
        for leftover in (tmp, meta.with_name(f"{meta.name}.{os.getpid()}.tmp")):
            try:
                leftover.unlink()
            except OSError:
                pass


class DeviceImages:
    """The prepared uint8 set, on the training device when it fits, with batch sampling.

    Batches are drawn with replacement by a dedicated generator (saved in
    checkpoints for exact resume), flipped on the device, and returned as
    float in [-1, 1]. Nothing here synchronises with the GPU.
    """

    def __init__(self, images: torch.Tensor, device: torch.device, *, flip: bool = True,
                 seed: int = 0, max_device_bytes: int | None = None):
        self.device = torch.device(device)
        self.flip = flip
        nbytes = images.numel()
        fits = True
        if self.device.type == "cuda":
            free, _total = torch.cuda.mem_get_info(self.device)
            budget = max_device_bytes if max_device_bytes is not None else free // 3
            fits = nbytes <= budget
        elif max_device_bytes is not None:
            fits = nbytes <= max_device_bytes
        self.on_device = fits
        if fits:
            self.images = images.to(self.device)
        else:
            self.images = images.pin_memory() if self.device.type == "cuda" else images
        self.generator = torch.Generator(device=self.images.device)
        self.generator.manual_seed(int(seed))

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def batch(self, n: int) -> torch.Tensor:
        idx = torch.randint(0, len(self), (n,), device=self.images.device,
                            generator=self.generator)
        x = self.images.index_select(0, idx)
        if not self.on_device:
            x = x.to(self.device, non_blocking=True)
        x = x.float().div_(127.5).sub_(1.0)
        if self.flip:
            flip_mask = torch.rand(n, device=self.images.device, generator=self.generator) < 0.5
            flip_mask = flip_mask.to(self.device, non_blocking=True).view(n, 1, 1, 1)
            x = torch.where(flip_mask, x.flip(3), x)
        return x

    def real_sample(self, n: int, seed: int = 1234) -> torch.Tensor:
        """A fixed set of real images (for the alarm and quality measures)."""
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(self), generator=g)[:n].to(self.images.device)
        return self.images.index_select(0, idx).to(self.device).float().div(127.5).sub(1.0)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        if "generator" in state:
            self.generator.set_state(state["generator"].to(torch.uint8).cpu())
