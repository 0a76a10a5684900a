"""A corpus of broken and odd image files, made here: each one is skipped or converted,
named with its reason in the dataset report, the CLI output and events.log; nothing crashes.
"""
from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganstudio.core import data as data_mod
from ganstudio.core.data import DatasetReport, load_dataset, prepare_image
from ganstudio.core.errors import DatasetError
from ganstudio.core.runs import RunFolder

RES = 16
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
BAD_NAME = b"bad\xffname.png"  # not valid UTF-8: Linux allows any bytes in a name


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def raw_png(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes) -> bytes:
    """A PNG written byte by byte (Pillow cannot write 16-bit colour PNGs)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(rows)) + _png_chunk(b"IEND", b""))


def gradient(size: int = 32) -> Image.Image:
    arr = np.zeros((size, size, 3), np.uint8)
    arr[..., 0] = (np.arange(size) * (255 // (size - 1)))[None, :]
    arr[..., 1] = 100
    return Image.fromarray(arr)


def build_corpus(root: Path) -> dict[str, str]:
    """Write the corpus; returns {file name: expected outcome} ('skip:<reason part>',
    'convert:<note part>' or 'use')."""
    root.mkdir(parents=True, exist_ok=True)
    expect: dict[str, str] = {}
    good = gradient()

    (root / "zero.png").write_bytes(b"")
    expect["zero.png"] = "skip:empty file"

    buf = io.BytesIO()
    good.save(buf, "PNG")
    (root / "truncated.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    expect["truncated.png"] = "skip:truncated"

    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, "JPEG", quality=90)
    (root / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    expect["truncated.jpg"] = "skip:truncated"

    (root / "notes.jpg").write_text("a shopping list, not a photo\n")
    expect["notes.jpg"] = "skip:not an image"

    # A real bomb: 144 million pixels (432 MB as RGB) in a file of a few kilobytes.
    Image.new("1", (12000, 12000)).save(root / "bomb.png")
    assert (root / "bomb.png").stat().st_size < 100_000
    expect["bomb.png"] = "skip:decompression bomb"

    rows = b"".join(b"\x00" + b"\xff\xff" * 8 + b"\x00\x00" * 8 for _ in range(16))
    (root / "gray16.png").write_bytes(raw_png(16, 16, 16, 0, rows))
    expect["gray16.png"] = "convert:converted to 8-bit"
    rows = b"".join(b"\x00" + b"\xff\xff\x00\x00\x00\x00" * 16 for _ in range(16))
    (root / "rgb16.png").write_bytes(raw_png(16, 16, 16, 2, rows))
    expect["rgb16.png"] = "use"  # Pillow reads 16-bit colour as 8-bit RGB itself

    Image.new("CMYK", (24, 24), (0, 255, 255, 0)).save(root / "cmyk.jpg", quality=95)
    expect["cmyk.jpg"] = "convert:CMYK converted to RGB"

    pal = Image.new("P", (16, 16), 0)
    pal.putpalette([0, 0, 255, 0, 255, 0] + [0] * 762)
    pal.paste(1, (0, 0, 8, 16))  # left half: opaque green; right half: transparent index 0
    pal.save(root / "palette_transparent.png", transparency=0)
    expect["palette_transparent.png"] = "convert:transparency flattened on white"

    frames = [Image.new("RGB", (16, 16), (255, 0, 0)), Image.new("RGB", (16, 16), (0, 0, 255))]
    frames[0].save(root / "animated.gif", save_all=True, append_images=frames[1:],
                   duration=100, loop=0)
    expect["animated.gif"] = "convert:first frame used"

    photo = Image.new("RGB", (48, 24), (0, 200, 0))  # wide as stored, tall when upright
    exif = photo.getexif()
    exif[0x0112] = 6
    photo.save(root / "exif_rotated.jpg", exif=exif, quality=95)
    expect["exif_rotated.jpg"] = "convert:EXIF orientation"

    Image.new("RGB", (1, 1), (9, 9, 9)).save(root / "one_by_one.png")
    expect["one_by_one.png"] = "skip:too small"
    Image.new("RGB", (4, 4), (9, 9, 9)).save(root / "tiny_4px.png")
    expect["tiny_4px.png"] = "skip:too small"
    Image.new("RGB", (3000, 2000), (120, 60, 30)).save(root / "huge.jpg", quality=80)
    expect["huge.jpg"] = "use"
    Image.new("RGB", (8, 8), (200, 10, 10)).save(root / "small_8px.png")
    expect["small_8px.png"] = "use"

    good.save(root / "café ñ 日本.png")
    expect["café ñ 日本.png"] = "use"
    good.save(root / "with  two spaces .png")
    expect["with  two spaces .png"] = "use"
    try:
        good.save(os.path.join(os.fsencode(root), BAD_NAME))
        expect[os.fsdecode(BAD_NAME)] = "use"
    except OSError:  # a file system that insists on UTF-8 names cannot hold this one
        pass

    os.symlink("loop_b.png", root / "loop_a.png")
    os.symlink("loop_a.png", root / "loop_b.png")
    expect["loop_a.png"] = expect["loop_b.png"] = "skip:symbolic link loop"
    os.symlink("missing.png", root / "dangling.png")
    expect["dangling.png"] = "skip:broken symbolic link"
    (root / "sub").mkdir()
    os.symlink("..", root / "sub" / "up")  # a folder loop: must not be walked
    good.save(root / "sub" / "nested.png")
    expect["nested.png"] = "use"
    if hasattr(os, "mkfifo"):
        os.mkfifo(root / "pipe.png")  # opening it for reading would block forever
        expect["pipe.png"] = "skip:not a regular file"
    return expect


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("corpus") / "odd files"
    return root, build_corpus(root)


@pytest.fixture(scope="module")
def corpus_loaded(corpus, tmp_path_factory):
    root, expect = corpus
    images, report = load_dataset(root, RES, 3, use_cache=False)
    return images, report, expect


def _by_name(entries) -> dict[str, str]:
    return {Path(p).name: why for p, why in entries}


def test_every_corpus_file_is_skipped_or_converted_with_its_reason(corpus_loaded):
    images, report, expect = corpus_loaded
    skipped = _by_name((s.path, s.reason) for s in report.skipped)
    converted = _by_name(report.converted)
    for name, outcome in expect.items():
        shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        kind, _, part = outcome.partition(":")
        if kind == "skip":
            assert shown in skipped, f"{name} should be skipped"
            assert part.lower() in skipped[shown].lower(), (name, skipped[shown])
        elif kind == "convert":
            assert shown in converted, f"{name} should be converted"
            assert part.lower() in converted[shown].lower(), (name, converted[shown])
        else:
            assert shown not in skipped, (name, skipped.get(shown))
    n_used = sum(1 for o in expect.values() if not o.startswith("skip"))
    assert report.used == n_used
    assert tuple(images.shape) == (n_used, 3, RES, RES)
    assert images.dtype == torch.uint8
    # The folder loop sub/up -> .. was not walked: no file was found twice.
    assert not any(f"{os.sep}up{os.sep}" in s.path for s in report.skipped)


def test_report_lines_name_each_file_and_are_printable(corpus_loaded):
    _images, report, _expect = corpus_loaded
    lines = report.lines()
    assert lines[0].startswith(f"{report.used} images")
    for s in report.skipped:
        assert f"skipped {s.path}: {s.reason}" in lines
    for p, note in report.converted:
        assert f"converted {p}: {note}" in lines
    for line in lines:
        line.encode("utf-8")  # no lone surrogates from odd file names
    capped = report.lines(limit=2)
    assert any(line.startswith("... and ") for line in capped)
    again = DatasetReport.from_dict(report.to_dict())
    assert again.lines() == lines


def test_undecodable_file_name_is_reported_readably(tmp_path):
    folder = tmp_path / "names"
    folder.mkdir()
    gradient().save(folder / "fine.png")
    (Path(os.fsdecode(os.path.join(os.fsencode(folder), b"empty\xfe.png")))).write_bytes(b"")
    _, report = load_dataset(folder, RES, 3, use_cache=False)
    assert [Path(s.path).name for s in report.skipped] == ["empty\\xfe.png"]
    run = RunFolder(tmp_path / "run")
    run.log(report.lines()[-1], "WARNING")
    assert "empty\\xfe.png: empty file" in run.events_path.read_text(encoding="utf-8")


def _pixels(path: Path, fit: str = "crop", channels: int = 3) -> np.ndarray:
    arr, reason, _notes = prepare_image(path, RES, channels, fit)
    assert arr is not None, reason
    return arr.transpose(1, 2, 0).astype(int)  # (H, W, C)


def test_conversions_give_the_right_pixels(corpus):
    root, _ = corpus
    g16 = _pixels(root / "gray16.png")
    assert g16[:, 2, 0].min() >= 250 and g16[:, -3, 0].max() <= 5  # 65535 -> 255, 0 -> 0
    rgb16 = _pixels(root / "rgb16.png")
    assert rgb16[..., 0].min() >= 250 and rgb16[..., 1:].max() <= 5
    cmyk = _pixels(root / "cmyk.jpg")
    assert cmyk[..., 0].mean() > 200 and cmyk[..., 1].mean() < 60 and cmyk[..., 2].mean() < 60
    pal = _pixels(root / "palette_transparent.png")
    assert tuple(pal[8, 2]) == (0, 255, 0)           # opaque green stays green
    assert tuple(pal[8, -2]) == (255, 255, 255)      # transparent becomes white
    gif = _pixels(root / "animated.gif")
    assert tuple(gif[8, 8]) == (255, 0, 0)           # the first frame, not the blue second
    # EXIF orientation 6: stored 48x24 (wide), upright 24x48 (tall). Padded to a square,
    # an upright picture has black bands left and right, green at the top centre.
    upright = _pixels(root / "exif_rotated.jpg", fit="pad")
    assert upright[:, 0].max() <= 10 and upright[:, -1].max() <= 10
    assert upright[0, RES // 2, 1] > 150
    huge = _pixels(root / "huge.jpg")
    assert abs(huge[..., 0].mean() - 120) < 6 and abs(huge[..., 2].mean() - 30) < 6
    gray = _pixels(root / "cmyk.jpg", channels=1)
    assert gray.shape == (RES, RES, 1)


def test_unreadable_file_real_permissions(tmp_path):
    if IS_ROOT:
        pytest.skip("running as root: chmod 000 files stay readable to root, so a real "
                    "unreadable file cannot be made here (see the simulated test)")
    folder = tmp_path / "perm"
    folder.mkdir()
    gradient().save(folder / "ok.png")
    gradient().save(folder / "locked.png")
    os.chmod(folder / "locked.png", 0)
    try:
        _, report = load_dataset(folder, RES, 3, use_cache=False)
    finally:
        os.chmod(folder / "locked.png", 0o644)
    assert [(Path(s.path).name, s.reason) for s in report.skipped] == [
        ("locked.png", "permission denied")]


def test_unreadable_file_simulated(tmp_path, monkeypatch):
    """Simulated for root (CI): the decoder's open raises EACCES exactly as the OS does."""
    folder = tmp_path / "perm"
    folder.mkdir()
    gradient().save(folder / "ok.png")
    gradient().save(folder / "locked.png")
    real_open = data_mod.Image.open

    def guarded_open(fp, *args, **kwargs):
        if Path(fp).name == "locked.png":
            raise PermissionError(13, "Permission denied", str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(data_mod.Image, "open", guarded_open)
    images, report = load_dataset(folder, RES, 3, use_cache=False)
    assert images.shape[0] == 1
    assert [(Path(s.path).name, s.reason) for s in report.skipped] == [
        ("locked.png", "permission denied")]


def test_a_decoder_crash_on_one_file_skips_only_that_file(tmp_path, monkeypatch):
    folder = tmp_path / "crashy"
    folder.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        gradient().save(folder / name)
    real_open = data_mod.Image.open

    def crashing_open(fp, *args, **kwargs):
        if Path(fp).name == "b.png":
            raise ZeroDivisionError("division by zero in a plugin decoder")
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(data_mod.Image, "open", crashing_open)
    images, report = load_dataset(folder, RES, 3, use_cache=False)
    assert images.shape[0] == 2
    assert report.skipped[0].path.endswith("b.png")
    assert "ZeroDivisionError" in report.skipped[0].reason


def test_single_image_folder_trains_with_a_warning(tmp_path, tiny_spec):
    from ganstudio.core import events as ev
    from ganstudio.core.engine import Engine, EngineSettings
    folder = tmp_path / "one"
    folder.mkdir()
    gradient().save(folder / "only.png")
    images, report = load_dataset(folder, 8, 3, use_cache=False)
    assert images.shape == (1, 3, 8, 8)
    assert report.warnings and "only one usable image" in report.warnings[0]
    seen = []
    engine = Engine(tiny_spec, tmp_path / "run", data_folder=folder,
                    settings=EngineSettings(total_steps=3, device="cpu"),
                    listeners=[seen.append])
    engine.prepare()
    result = engine.run_loop()
    assert isinstance(result, ev.Finished) and result.step == 3
    warnings = [e.message for e in seen if isinstance(e, ev.Warning) and e.kind == "dataset"]
    assert warnings and "only one usable image" in warnings[0]


def test_folder_with_nothing_usable_is_a_clear_error(tmp_path):
    folder = tmp_path / "junk"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"")
    (folder / "b.jpg").write_text("not a picture")
    with pytest.raises(DatasetError) as err:
        load_dataset(folder, RES, 3, use_cache=False)
    msg = str(err.value)
    assert "none of the 2 image files" in msg
    assert "a.png: empty file" in msg and "b.jpg: not an image" in msg
    os.symlink("nowhere.png", folder / "c.png")
    (folder / "a.png").unlink()
    (folder / "b.jpg").unlink()
    with pytest.raises(DatasetError, match="c.png: broken symbolic link"):
        load_dataset(folder, RES, 3, use_cache=False)


def test_report_survives_the_cache(corpus, tmp_path):
    root, _ = corpus
    first_images, first = load_dataset(root, RES, 3, cache_dir=tmp_path / "cache")
    second_images, second = load_dataset(root, RES, 3, cache_dir=tmp_path / "cache")
    assert second.from_cache and not first.from_cache
    assert second.lines()[1:] == first.lines()[1:]
    assert second.summary() == first.summary() + " (from cache)"
    assert bool((first_images == second_images).all())


def test_cli_names_every_skipped_and_converted_file(corpus, tmp_path, tiny_plugin_file, capsys):
    from ganstudio.cli import main
    root, expect = corpus
    run_dir = tmp_path / "cli run"
    code = main(["train", "--model", "tinygan", "--data", str(root), "--out", str(run_dir),
                 "--steps", "2", "--device", "cpu", "--quiet", "--set", "resolution=16"])
    err = capsys.readouterr().err
    assert code == 0, err
    log = (run_dir / "events.log").read_text(encoding="utf-8")
    for name, outcome in expect.items():
        kind, _, part = outcome.partition(":")
        if kind == "use":
            continue
        verb = "skipped" if kind == "skip" else "converted"
        cli_lines = [ln for ln in err.splitlines() if ln.strip().startswith(verb)
                     and f"{os.sep}{name}:" in ln]
        assert len(cli_lines) == 1, (name, err)
        assert part.lower() in cli_lines[0].lower()
        assert any(f"{os.sep}{name}:" in ln and verb in ln for ln in log.splitlines()), name


def test_more_hostile_and_unusual_files(tmp_path):
    """Beyond the issue's list: a device behind a link, a header claiming 65000x65000,
    a bomb in a PNG text chunk, a PNG with a broken checksum, unusual colour modes."""
    from PIL import PngImagePlugin
    root = tmp_path / "more"
    root.mkdir()
    if os.path.exists("/dev/zero"):
        os.symlink("/dev/zero", root / "endless.png")  # reading it would never end
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, "JPEG")
    raw = bytearray(buf.getvalue())
    sof = raw.find(b"\xff\xc0")
    raw[sof + 5:sof + 9] = struct.pack(">HH", 65000, 65000)
    (root / "claims_huge.jpg").write_bytes(bytes(raw))
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "x" * (20 * 1024 * 1024), zip=True)
    Image.new("RGB", (16, 16)).save(root / "text_bomb.png", pnginfo=info)
    buf = io.BytesIO()
    gradient().save(buf, "PNG")
    raw = bytearray(buf.getvalue())
    raw[30] ^= 0xFF
    (root / "bad_crc.png").write_bytes(bytes(raw))
    Image.fromarray(np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16), "F").save(
        root / "float.tif")
    Image.new("LAB", (16, 16), (50, 10, 10)).save(root / "lab.tif")
    Image.new("LA", (16, 16), (100, 0)).save(root / "gray_alpha.png")
    Image.new("1", (16, 16), 1).save(root / "bilevel.png")
    photo = Image.new("RGB", (20, 10), (0, 200, 0))
    exif = photo.getexif()
    exif[0x0112] = 9  # not a valid orientation: used as stored, no false note
    photo.save(root / "odd_orientation.jpg", exif=exif)

    images, report = load_dataset(root, RES, 3, use_cache=False)
    skipped = _by_name((s.path, s.reason) for s in report.skipped)
    converted = _by_name(report.converted)
    if os.path.exists("/dev/zero"):
        assert "not a regular file" in skipped["endless.png"]
    assert "too large" in skipped["claims_huge.jpg"]
    assert "too large" in skipped["text_bomb.png"]
    assert "bad_crc.png" in skipped
    assert "odd_orientation.jpg" not in converted and "odd_orientation.jpg" not in skipped
    assert report.used == 5 and images.shape[0] == 5
    f = _pixels(root / "float.tif", channels=1)[..., 0]
    assert f.min() <= 2 and f.max() >= 253  # 0..1 floats span the 8-bit range
    assert tuple(_pixels(root / "gray_alpha.png")[4, 4]) == (255, 255, 255)  # transparent


def test_cache_writes_leave_no_torn_entries(tmp_path, monkeypatch):
    """A writer killed mid-save leaves a temp file that the next write removes; a full
    cache folder only skips caching (the images still load)."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    gradient().save(folder / "a.png")
    cache = tmp_path / "cache"
    cache.mkdir()
    dead = cache / ("0" * 32 + ".npy.999999999.tmp.npy")  # pid that cannot exist
    dead.write_bytes(b"half an array")
    images, report = load_dataset(folder, RES, 3, cache_dir=cache)
    assert not dead.exists() and report.cache_file
    assert sorted(p.suffix for p in cache.iterdir()) == [".json", ".npy"]

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(data_mod.np, "save", full_disk)
    gradient().save(folder / "b.png")
    images, report = load_dataset(folder, RES, 3, cache_dir=cache)
    assert images.shape[0] == 2 and report.cache_file is None
    assert not [p for p in cache.iterdir() if ".tmp" in p.name]
