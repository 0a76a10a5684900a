"""Writing images and videos at the size asked: PNG, animated GIF, MP4.

One implementation for every face and every kind of output (a sample grid, a
single sample, a run's time-lapse, a loop through latent space):

- :class:`OutputSize` says how big: a factor (x1, x2, x4, x8) or a pixel size
  for the longest side, scaled with nearest neighbour (crisp pixels) or
  smoothly (Lanczos);
- every file is written under a temporary name in the target folder and
  renamed when complete, so a cancelled or failed write never leaves a half
  file under the name asked for (and nothing sits at 0 bytes under that name
  while it is being written);
- a GIF carries a real frame delay (GIF counts in hundredths of a second, so
  the delay is the nearest one to ``1 / fps``), an MP4 the frame rate asked.

Plain numpy / Pillow / imageio; no Qt. Errors are :class:`UserError` naming the file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from .errors import UserError

IMAGE_SUFFIXES = (".png",)
VIDEO_SUFFIXES = (".mp4", ".gif")
SCALES = (1, 2, 4, 8)
#: Longest side an output may have (an 8K frame); larger asks are refused.
MAX_SIDE = 8192
#: GIF frame delays are whole hundredths of a second; most viewers treat less than 2 as 10.
GIF_MIN_DELAY_CS = 2


@dataclass(frozen=True)
class OutputSize:
    """How big an output is: ``pixels`` (the longest side) when set, else ``scale`` times
    the source; ``smooth`` scales with Lanczos instead of nearest neighbour."""

    scale: int = 1
    pixels: int | None = None
    smooth: bool = False

    def target(self, width: int, height: int) -> tuple[int, int]:
        """The output's (width, height) for a source of ``width`` x ``height``."""
        if self.pixels:
            longest = max(width, height)
            w = max(1, round(width * self.pixels / longest))
            h = max(1, round(height * self.pixels / longest))
        else:
            w, h = width * int(self.scale), height * int(self.scale)
        if max(w, h) > MAX_SIDE:
            raise UserError(f"an output of {w}x{h} px is larger than {MAX_SIDE} px a side; "
                            "choose a smaller size")
        return w, h

    def check(self) -> "OutputSize":
        if self.pixels is not None and not 1 <= int(self.pixels) <= MAX_SIDE:
            raise UserError(f"the output size must be between 1 and {MAX_SIDE} px, "
                            f"got {self.pixels}")
        if self.pixels is None and int(self.scale) < 1:
            raise UserError(f"the output scale must be at least 1, got {self.scale}")
        return self


def as_rgb_frame(array: np.ndarray) -> np.ndarray:
    """A uint8 (H, W, 3) frame from (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)."""
    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        raise ValueError(f"frames are uint8, got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        arr = arr[:, :, :3]
    return np.ascontiguousarray(arr)


def resize(array: np.ndarray, size: OutputSize) -> np.ndarray:
    """``array`` (uint8 (H, W) or (H, W, C)) at ``size``."""
    from PIL import Image
    h, w = array.shape[:2]
    tw, th = size.target(w, h)
    if (tw, th) == (w, h):
        return array
    squeeze = array.ndim == 3 and array.shape[2] == 1
    img = Image.fromarray(np.ascontiguousarray(array[:, :, 0] if squeeze else array))
    how = Image.Resampling.LANCZOS if size.smooth else Image.Resampling.NEAREST
    out = np.asarray(img.resize((tw, th), how))
    return out[:, :, None] if squeeze else out


def temporary_sibling(path: Path) -> Path:
    """The name a file is written under before it is renamed to ``path``: hidden, in
    the same folder (so the rename is atomic), with the same suffix (writers pick
    the format by it)."""
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")


def _check_target(path: str | Path, suffixes: tuple[str, ...], what: str) -> Path:
    path = Path(path).expanduser()
    if path.suffix.lower() not in suffixes:
        raise UserError(f"{path.name}: {what} is saved as " + " or ".join(suffixes))
    from .exporting import check_writable
    return check_writable(path)


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def write_png(array: np.ndarray, path: str | Path, size: OutputSize = OutputSize()) -> Path:
    """Save a uint8 image (H, W[, C]) as PNG at ``size``; a missing suffix becomes .png."""
    from PIL import Image
    path = Path(path).expanduser()
    if path.suffix.lower() != ".png":
        path = path.with_name(path.name + ".png") if not path.suffix else path.with_suffix(".png")
    path = _check_target(path, IMAGE_SUFFIXES, "an image")
    arr = resize(np.asarray(array), size.check())
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    tmp = temporary_sibling(path)
    try:
        Image.fromarray(np.ascontiguousarray(arr)).save(tmp, format="PNG")
        os.replace(tmp, path)
    except OSError as e:
        _remove(tmp)
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None
    return path


def gif_delay_ms(fps: float) -> int:
    """The GIF frame delay nearest to ``1 / fps``, in milliseconds (a multiple of 10)."""
    centis = max(GIF_MIN_DELAY_CS, round(100.0 / fps))
    return int(centis * 10)


class VideoWriter:
    """An MP4 or GIF (by the suffix) written frame by frame under a temporary name.

    Use as a context manager; :meth:`commit` renames the finished file into place.
    Leaving the block without a commit (an error, a cancel) removes the temporary
    file. Frames are uint8 (H, W[, C]); each is scaled to ``size`` (the first frame
    fixes the output's size; later frames of another size are scaled to it) and, for
    MP4, cut to even sides.
    """

    def __init__(self, path: str | Path, fps: float, size: OutputSize = OutputSize(),
                 source: tuple[int, int] | None = None):
        if not fps > 0 or fps > 240:
            raise UserError(f"the frame rate must be above 0 and at most 240, got {fps:g}")
        self.path = _check_target(path, VIDEO_SUFFIXES, "a video")
        self.fps = float(fps)
        self.size = size.check()
        self.suffix = self.path.suffix.lower()
        self.tmp = temporary_sibling(self.path)
        self.frames = 0
        self._frame_wh: tuple[int, int] | None = None
        if source is not None:   # (width, height) the size applies to, e.g. the largest frame
            self._frame_wh = self._output_wh(*source)
        self._writer = None
        self._done = False

    def __enter__(self) -> "VideoWriter":
        import imageio.v2 as imageio
        # Create the temporary file first: a folder that cannot take it is said with the
        # real reason, before a video library opens (and later complains about) anything.
        try:
            os.close(os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except OSError as e:
            raise UserError(f"cannot write {self.path}: {e.strerror or e}") from None
        try:
            if self.suffix == ".gif":
                self._writer = imageio.get_writer(self.tmp, mode="I", loop=0,
                                                  duration=gif_delay_ms(self.fps))
            else:
                self._writer = imageio.get_writer(self.tmp, fps=self.fps, codec="libx264",
                                                  quality=8, macro_block_size=1,
                                                  pixelformat="yuv420p")
        except (ImportError, RuntimeError, OSError, ValueError) as e:
            _remove(self.tmp)
            hint = " (MP4 needs the imageio-ffmpeg package)" if self.suffix == ".mp4" else ""
            raise UserError(f"cannot write {self.path.name}: {e}{hint}") from None
        return self

    def _output_wh(self, width: int, height: int) -> tuple[int, int]:
        w, h = self.size.target(width, height)
        if self.suffix == ".mp4":   # the codec's colour format needs even sides
            w, h = max(2, w // 2 * 2), max(2, h // 2 * 2)
        return w, h

    def append(self, frame: np.ndarray) -> None:
        from PIL import Image
        arr = as_rgb_frame(frame)
        if self._frame_wh is None:
            self._frame_wh = self._output_wh(arr.shape[1], arr.shape[0])
        w, h = self._frame_wh
        if (arr.shape[1], arr.shape[0]) != (w, h):
            how = Image.Resampling.LANCZOS if self.size.smooth else Image.Resampling.NEAREST
            arr = np.asarray(Image.fromarray(arr).resize((w, h), how))
        try:
            self._writer.append_data(arr)
        except OSError as e:
            raise UserError(f"cannot write {self.path}: {e.strerror or e}") from None
        self.frames += 1

    def commit(self) -> Path:
        """Finish the file and give it its name."""
        if self.frames == 0:
            raise UserError(f"{self.path.name}: no frames to write")
        try:
            self._writer.close()
            os.replace(self.tmp, self.path)
        except OSError as e:
            raise UserError(f"cannot write {self.path}: {e.strerror or e}") from None
        self._done = True
        return self.path

    def __exit__(self, *exc) -> None:
        if not self._done:
            try:
                if self._writer is not None:
                    self._writer.close()
            except Exception:  # noqa: BLE001 - a half-written file is removed whatever failed
                pass
            _remove(self.tmp)


def write_video(frames: Iterable[np.ndarray], total: int, path: str | Path, *, fps: float,
                size: OutputSize = OutputSize(), source: tuple[int, int] | None = None,
                progress: Callable[[int, int], None] | None = None,
                cancelled: Callable[[], bool] | None = None) -> Path | None:
    """Write ``total`` frames to an MP4 or GIF; ``progress(done, total)`` after each frame;
    ``cancelled()`` polled between frames (None is returned and nothing is left)."""
    with VideoWriter(path, fps, size, source) as writer:
        for frame in frames:
            if cancelled is not None and cancelled():
                return None
            writer.append(frame)
            if progress is not None:
                progress(writer.frames, total)
        return writer.commit()


def spread(items: list, count: int) -> list:
    """``count`` of ``items`` evenly spaced, the first and the last kept; items repeat
    when there are fewer than ``count`` (each is then held longer)."""
    if not items or count < 1:
        return []
    if count == 1:
        return [items[-1]]
    last = len(items) - 1
    return [items[round(i * last / (count - 1))] for i in range(count)]


def largest_size(paths: Iterable[Path]) -> tuple[int, int]:
    """The largest (width, height) among image files (headers only are read)."""
    from PIL import Image
    w = h = 0
    for p in paths:
        try:
            with Image.open(p) as im:
                w, h = max(w, im.width), max(h, im.height)
        except OSError as e:
            raise UserError(f"cannot read {p}: {e}") from None
    return w, h


def read_frames(paths: Iterable[Path]) -> Iterator[np.ndarray]:
    """Image files as uint8 RGB frames, read one at a time."""
    from PIL import Image
    for p in paths:
        try:
            with Image.open(p) as im:
                yield np.asarray(im.convert("RGB"), dtype=np.uint8)
        except OSError as e:
            raise UserError(f"cannot read {p}: {e}") from None
