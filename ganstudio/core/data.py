"""Datasets from a folder of images: scan, validate, decode once, cache, keep on device.

``load_dataset`` walks a folder recursively, decodes every image in parallel
(EXIF orientation applied; grayscale, RGBA, palette, CMYK and 16-bit images
converted), makes it square by centre-crop or padding, resizes it to the
training resolution and returns one uint8 tensor (N, C, H, W) with a report
that names every skipped file and why, counts the files that are not images,
names the GAN Studio run folders found inside (left out: their sample grids
are not training data) and tells whether every image is greyscale. The
prepared array is cached on disk under a key made of the folder's file list
(names, sizes, modification times, permissions and owners: fixing a file's
permissions makes it count again) and the preparation settings, so reopening
the same folder is a file read.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from PIL import Image  # noqa: F401 - tests reach Pillow through this module

from .decode import (BIG_IMAGE_PIXELS, GREY_TOLERANCE, MAX_PIXELS, MIN_SIDE,  # noqa: F401
                     prepare_image)
from .errors import DatasetError, UserError
from .safe_files import pid_alive, printable, write_atomic

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".jpe", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
CACHE_FORMAT = 4
#: A folder holding this file is a GAN Studio run folder, never training data.
RUN_MARKER = "run.json"
def display_path(path: str | os.PathLike) -> str:
    """``path`` as printable text: undecodable bytes in a file name become ``\\xNN``.

    File names on Linux may be any bytes; Python keeps the odd ones as lone
    surrogates, which cannot be printed or written to a UTF-8 log. Control characters
    (a newline, a terminal escape) are escaped too: a file name must not be able to
    forge a line of a log or drive the terminal.
    """
    raw = os.fsencode(os.fspath(path))
    return printable(raw.decode("utf-8", "backslashreplace"))


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
    #: Files that are not images (by their extension), left out: how many, and a few names.
    other_files: int = 0
    other_examples: list[str] = field(default_factory=list)
    #: Run folders (holding a run.json) found inside the folder, left out with their files.
    excluded_runs: list[str] = field(default_factory=list)
    #: True when every used image is greyscale (a grey mode, or colour channels equal):
    #: one channel would do. None when unknown (an in-memory set).
    grayscale: bool | None = None

    def to_dict(self) -> dict:
        return {
            "folder": self.folder, "resolution": self.resolution, "channels": self.channels,
            "fit": self.fit, "images": self.used,
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "converted": [{"path": p, "note": n} for p, n in self.converted],
            "from_cache": self.from_cache, "seconds": round(self.seconds, 3),
            "warnings": list(self.warnings),
            "other_files": self.other_files, "other_examples": list(self.other_examples),
            "excluded_runs": list(self.excluded_runs), "grayscale": self.grayscale,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "DatasetReport":
        rep = cls(d["folder"], int(d["resolution"]), int(d["channels"]), d.get("fit", "crop"))
        rep.used = int(d.get("images", 0))
        rep.skipped = [SkippedFile(s["path"], s["reason"]) for s in d.get("skipped", [])]
        rep.converted = [(c["path"], c["note"]) for c in d.get("converted", [])]
        rep.warnings = [str(w) for w in d.get("warnings", [])]
        rep.other_files = int(d.get("other_files", 0))
        rep.other_examples = [str(x) for x in d.get("other_examples", [])]
        rep.excluded_runs = [str(x) for x in d.get("excluded_runs", [])]
        grey = d.get("grayscale")
        rep.grayscale = grey if isinstance(grey, bool) else None
        return rep

    def summary(self) -> str:
        src = " (from cache)" if self.from_cache else ""
        other = f", {self.other_files} other file(s) not images" if self.other_files else ""
        runs = (f", {len(self.excluded_runs)} run folder(s) left out"
                if self.excluded_runs else "")
        grey = ", all greyscale" if self.grayscale else ""
        return (f"{self.used} images at {self.resolution}x{self.resolution}, "
                f"{self.channels} channel(s){grey}, {len(self.skipped)} skipped"
                f"{other}{runs}{src}")

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

        out += [f"left out {p}: a GAN Studio run folder (its images are a run's output)"
                for p in self.excluded_runs]
        out += capped([f"skipped {s.path}: {s.reason}" for s in self.skipped])
        if self.other_files:
            more = self.other_files - len(self.other_examples)
            names = ", ".join(self.other_examples) + (f" and {more} more" if more > 0 else "")
            out.append(f"not images: {names}")
        out += capped([f"converted {p}: {n}" for p, n in self.converted])
        return out


@dataclass
class FolderScan:
    """What :func:`scan_folder_details` found below a folder."""

    files: list[Path]                  # image files (by extension) that may be read
    skipped: list[SkippedFile]         # entries that cannot be images, with the reason
    other_files: list[Path]            # files that are not images (by their extension)
    excluded_runs: list[Path]          # run folders found inside, left out


def scan_folder(folder: str | os.PathLike) -> tuple[list[Path], list[SkippedFile]]:
    """All image files below ``folder`` (sorted), and files skipped while scanning.
    See :func:`scan_folder_details`."""
    found = scan_folder_details(folder)
    return found.files, found.skipped


def scan_folder_details(folder: str | os.PathLike) -> FolderScan:
    """Every image file below ``folder`` (sorted), files skipped, other files, run folders.

    Symbolic links to folders are not followed (no loops); links to files are
    followed; broken and looping links, unreadable entries and things that are
    not regular files (a pipe named ``x.png`` would block a reader forever) are
    reported with the reason. A folder below ``folder`` holding a ``run.json`` is a
    GAN Studio run folder (``--out`` inside ``--data``): it and everything below it
    are left out, so a run never trains on its own sample grids. Hidden entries
    (names starting with ``.``) are ignored.
    """
    root = Path(folder).expanduser()
    if not root.exists():
        raise DatasetError(f"image folder not found: {root}")
    if not root.is_dir():
        raise DatasetError(f"not a folder: {root}")
    found = FolderScan([], [], [], [])

    def onerror(err: OSError) -> None:
        found.skipped.append(SkippedFile(display_path(err.filename or "?"),
                                         f"cannot read folder: {err.strerror or err}"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror, followlinks=False):
        base = Path(dirpath)
        if base != root and RUN_MARKER in filenames:
            found.excluded_runs.append(base)
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            p = base / name
            if os.path.splitext(name)[1].lower() not in IMAGE_EXTENSIONS:
                found.other_files.append(p)
                continue
            reason = _entry_problem(p)
            if reason:
                found.skipped.append(SkippedFile(display_path(p), reason))
                continue
            found.files.append(p)
    return found


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
    """A key that changes when any file is added, removed, resized, touched, or has its
    permissions or owner changed."""
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
            # Permissions, owner and the change time too: they decide whether the file
            # can be read (a file skipped as "permission denied" counts once fixed).
            h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_mode}\0{st.st_uid}"
                     f"\0{st.st_gid}\0{st.st_ctime_ns}\n".encode("utf-8", "surrogateescape"))
        except OSError:
            h.update(f"{p}\0missing\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:32]


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
    found = scan_folder_details(root)
    files, skipped = found.files, found.skipped
    report = DatasetReport(display_path(root), int(resolution), int(channels), fit,
                           skipped=list(skipped))
    report.other_files = len(found.other_files)
    report.other_examples = [display_path(p.relative_to(root)) for p in found.other_files[:5]]
    report.excluded_runs = [display_path(p) for p in found.excluded_runs]
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
            cached.other_files, cached.other_examples = report.other_files, report.other_examples
            cached.excluded_runs = report.excluded_runs
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
    grey = np.zeros(total, dtype=bool)
    workers = workers or min(8, (os.cpu_count() or 2))

    def work(i: int):
        facts: dict = {}
        try:
            result = prepare_image(files[i], resolution, channels, fit, facts)
        except BaseException as e:  # noqa: BLE001 - one file must never stop the whole set
            if isinstance(e, KeyboardInterrupt):
                raise
            result = (None, f"cannot decode: {e.__class__.__name__}: {e}", [])
        grey[i] = bool(facts.get("grey", False))
        return i, result

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
    report.grayscale = bool(grey[ok].all()) if report.used else None
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
    """Array and report, each written to a fresh temporary file and renamed (a kill leaves
    no torn entry; see :mod:`ganstudio.core.safe_files`); temporary files of writers that
    died are removed; errors only skip caching."""
    from .safe_files import atomic_file, remove_stale_temporaries
    try:
        cdir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(cdir)
        for old in cdir.iterdir():  # the temporary names of earlier versions
            m = _CACHE_TEMP_RE.match(old.name)
            if m and not pid_alive(int(m.group(1))):
                try:
                    old.unlink()
                except OSError:
                    pass
        with atomic_file(npy, "wb", fsync=False) as f:
            np.save(f, data)
        write_atomic(meta, json.dumps(report.to_dict()), fsync=False)
        report.cache_file = str(npy)
    except (OSError, UserError):
        pass  # caching is an optimisation: a read-only, full or tampered cache folder is fine


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
