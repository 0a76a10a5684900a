"""Folder datasets: scanning, decoding and conversion, square fitting, cache, DeviceImages."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganstudio.core.data import DeviceImages, load_dataset, prepare_image, scan_folder
from ganstudio.core.errors import DatasetError, UserError


def save_array(path: Path, array: np.ndarray, mode: str | None = None, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path, **kw) if mode else Image.fromarray(array).save(path, **kw)
    return path


def quadrant_image(side: int = 16) -> np.ndarray:
    """Black square with a red top-left quadrant: shows any rotation or flip."""
    a = np.zeros((side, side, 3), np.uint8)
    a[: side // 2, : side // 2] = (255, 0, 0)
    return a


def prep(path: Path, resolution: int = 16, channels: int = 3, fit: str = "crop") -> np.ndarray:
    arr, reason, _notes = prepare_image(path, resolution, channels, fit)
    assert arr is not None, reason
    assert arr.dtype == np.uint8 and arr.shape == (channels, resolution, resolution)
    return arr


# -- scanning --------------------------------------------------------------------------------
def test_scan_is_recursive_sorted_and_skips_hidden_and_other_files(tmp_path, make_image):
    root = tmp_path / "set"
    make_image(root / "b.png")
    make_image(root / "a.JPG", fmt="JPEG")
    make_image(root / "sub" / "deeper" / "c.webp", fmt="WEBP")
    make_image(root / "sub" / "d.bmp")
    make_image(root / "sub" / "e.tiff")
    make_image(root / "sub" / "f.gif")
    make_image(root / ".hidden" / "g.png")
    make_image(root / ".h.png")
    (root / "readme.txt").write_text("not an image")
    files, skipped = scan_folder(root)
    rel = [p.relative_to(root).as_posix() for p in files]
    # deterministic order: each folder's files sorted, then its sub-folders
    assert rel == ["a.JPG", "b.png", "sub/d.bmp", "sub/e.tiff", "sub/f.gif", "sub/deeper/c.webp"]
    assert skipped == []
    images, report = load_dataset(root, 8, 3)
    assert images.shape == (6, 3, 8, 8) and report.used == 6 and report.skipped == []


def test_fixture_folder_loads_every_image(image_folder):
    images, report = load_dataset(image_folder, 16, 3)
    assert images.dtype == torch.uint8 and images.shape == (12, 3, 16, 16)
    assert report.used == 12 and report.skipped == [] and not report.from_cache
    assert report.folder == str(image_folder.resolve())
    assert "12 images at 16x16, 3 channel(s), 0 skipped" == report.summary()
    # the images differ from one another (real decoding, not a constant)
    assert len({images[i].numpy().tobytes() for i in range(12)}) == 12


def test_bad_files_are_skipped_with_file_and_reason(image_folder):
    (image_folder / "empty.png").write_bytes(b"")
    (image_folder / "text.jpg").write_text("hello, I am not a JPEG")
    Image.new("RGB", (3, 3)).save(image_folder / "tiny.png")
    images, report = load_dataset(image_folder, 8, 3)
    assert images.shape[0] == 12 and report.used == 12
    reasons = {Path(s.path).name: s.reason for s in report.skipped}
    assert set(reasons) == {"empty.png", "text.jpg", "tiny.png"}
    assert "empty" in reasons["empty.png"]
    assert "not an image" in reasons["text.jpg"]
    assert "too small" in reasons["tiny.png"]
    lines = report.lines()
    assert any("text.jpg" in line and "not an image" in line for line in lines)


def test_progress_callback_reports_completion(image_folder):
    calls = []
    load_dataset(image_folder, 8, 3, progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1] == (12, 12)


# -- errors ----------------------------------------------------------------------------------
def test_missing_empty_and_all_bad_folders_are_clear_errors(tmp_path):
    with pytest.raises(DatasetError, match="image folder not found: .*nowhere"):
        load_dataset(tmp_path / "nowhere", 8)
    afile = tmp_path / "file.png"
    afile.write_bytes(b"x")
    with pytest.raises(DatasetError, match="not a folder"):
        load_dataset(afile, 8)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(DatasetError, match="no (usable )?image files .* found in .*empty"):
        load_dataset(empty, 8)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (bad / "b.jpg").write_bytes(b"")
    with pytest.raises(DatasetError) as e:
        load_dataset(bad, 8)
    msg = str(e.value)
    assert "none of the 2 image files" in msg and "a.png" in msg and "b.jpg" in msg
    assert isinstance(e.value, UserError)


def test_bad_arguments_are_refused(image_folder):
    with pytest.raises(DatasetError, match="channels must be 1 or 3"):
        load_dataset(image_folder, 8, channels=2)
    with pytest.raises(DatasetError, match="fit must be 'crop' or 'pad'"):
        load_dataset(image_folder, 8, fit="stretch")


# -- decoding and conversion -----------------------------------------------------------------
def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = save_array(tmp_path / "rotated.png", quadrant_image(16), exif=exif)
    arr = prep(path)
    # the red quadrant moved from top-left to top-right
    assert (arr[:, :8, 8:].reshape(3, -1).mean(1) == [255, 0, 0]).all()
    assert arr[:, :8, :8].max() == 0
    plain = prep(save_array(tmp_path / "plain.png", quadrant_image(16)))
    assert (plain[:, :8, :8].reshape(3, -1).mean(1) == [255, 0, 0]).all()


def test_grayscale_to_three_channels_and_colour_to_one(tmp_path):
    gray = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1))
    path = save_array(tmp_path / "gray.png", gray, "L")
    rgb = prep(path, channels=3)
    assert np.array_equal(rgb[0], gray) and np.array_equal(rgb[1], gray) and np.array_equal(rgb[2], gray)
    one = prep(path, channels=1)
    assert np.array_equal(one[0], gray)
    colour = np.zeros((16, 16, 3), np.uint8)
    colour[..., 1] = 200  # pure green -> luma 0.587 * 200
    one = prep(save_array(tmp_path / "green.png", colour), channels=1)
    assert abs(int(one.mean()) - round(0.587 * 200)) <= 1


def test_rgba_is_flattened_on_white(tmp_path):
    a = np.zeros((16, 16, 4), np.uint8)
    a[..., 0] = 255
    a[:, :8, 3] = 255  # left half opaque red, right half fully transparent
    path = save_array(tmp_path / "cutout.png", a, "RGBA")
    arr, _, notes = prepare_image(path, 16, 3, "crop")
    assert (arr[:, :, :8].reshape(3, -1).mean(1) == [255, 0, 0]).all()
    assert (arr[:, :, 8:] == 255).all()
    assert any("transparency" in n for n in notes)


def test_palette_images_with_and_without_transparency(tmp_path):
    img = Image.fromarray(quadrant_image(16)).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    img.save(tmp_path / "pal.png")
    arr, _, notes = prepare_image(tmp_path / "pal.png", 16, 3, "crop")
    assert (arr[:, :8, :8].reshape(3, -1).mean(1) == [255, 0, 0]).all()
    assert arr[:, 8:, 8:].max() == 0
    assert "palette converted" in notes
    black_index = img.getpixel((15, 15))
    img.save(tmp_path / "pal_t.png", transparency=black_index)
    arr, _, _ = prepare_image(tmp_path / "pal_t.png", 16, 3, "crop")
    assert (arr[:, 8:, 8:] == 255).all()  # the transparent black became white
    assert (arr[:, :8, :8].reshape(3, -1).mean(1) == [255, 0, 0]).all()


def test_cmyk_is_converted_to_rgb(tmp_path):
    cmyk = Image.fromarray(quadrant_image(16)).convert("CMYK")
    cmyk.save(tmp_path / "cmyk.tif")
    cmyk.save(tmp_path / "cmyk.jpg", quality=98)
    arr, _, notes = prepare_image(tmp_path / "cmyk.tif", 16, 3, "crop")
    assert "CMYK converted to RGB" in notes
    assert (arr[:, :8, :8].reshape(3, -1).mean(1) == [255, 0, 0]).all()
    assert arr[:, 8:, 8:].max() == 0
    arr, reason, _ = prepare_image(tmp_path / "cmyk.jpg", 16, 3, "crop")
    assert arr is not None, reason
    red = arr[:, 1:7, 1:7].reshape(3, -1).mean(1)
    assert red[0] > 200 and red[1] < 60 and red[2] < 60


def test_sixteen_bit_images_are_scaled_to_eight_bit(tmp_path):
    a = np.zeros((16, 16), np.uint16)
    a[:, :8] = 65535
    a[:, 8:] = 32896  # 32896 / 65535 * 255 = 128.0
    Image.fromarray(a).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I;16")
    arr, _, notes = prepare_image(tmp_path / "deep.png", 16, 1, "crop")
    assert (arr[0, :, :8] == 255).all() and (arr[0, :, 8:] == 128).all()
    assert any("8-bit" in n for n in notes)
    rgb = prep(tmp_path / "deep.png", channels=3)
    assert (rgb[:, :, :8] == 255).all() and (rgb[:, :, 8:] == 128).all()


def test_animated_gif_uses_the_first_frame(tmp_path):
    frames = [Image.fromarray(np.full((16, 16, 3), v, np.uint8)) for v in (255, 0)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    arr, _, notes = prepare_image(tmp_path / "anim.gif", 16, 1, "crop")
    assert arr.min() > 240 and any("first frame" in n for n in notes)


# -- making images square --------------------------------------------------------------------
def wide_image() -> np.ndarray:
    """32 wide x 16 high: columns 0-7 red, 8-23 green, 24-31 blue."""
    a = np.zeros((16, 32, 3), np.uint8)
    a[:, :8] = (255, 0, 0)
    a[:, 8:24] = (0, 255, 0)
    a[:, 24:] = (0, 0, 255)
    return a


def test_crop_takes_the_centre_square(tmp_path):
    arr = prep(save_array(tmp_path / "wide.png", wide_image()), resolution=16, fit="crop")
    assert (arr[1] == 255).all() and arr[0].max() == 0 and arr[2].max() == 0


def test_pad_keeps_the_whole_image_with_black_bars(tmp_path):
    arr = prep(save_array(tmp_path / "wide.png", wide_image()), resolution=32, fit="pad")
    assert arr[:, :8].max() == 0 and arr[:, 24:].max() == 0  # bars above and below
    body = arr[:, 8:24]
    assert (body[0, :, :8] == 255).all() and (body[2, :, 24:] == 255).all()
    assert (body[1, :, 8:24] == 255).all()


def test_resize_to_the_training_resolution(tmp_path, make_image):
    make_image(tmp_path / "big" / "a.png", size=(64, 48), seed=3)
    for res in (8, 16, 32):
        images, _ = load_dataset(tmp_path / "big", res, 3)
        assert images.shape == (1, 3, res, res)
    ones, _ = load_dataset(tmp_path / "big", 16, 1)
    assert ones.shape == (1, 1, 16, 16)


# -- the on-disk cache -----------------------------------------------------------------------
def test_reopening_is_a_cache_hit_in_the_cache_dir(image_folder, cache_dir):
    first, rep1 = load_dataset(image_folder, 16, 3)
    assert not rep1.from_cache
    assert rep1.cache_file and Path(rep1.cache_file).parent == cache_dir
    second, rep2 = load_dataset(image_folder, 16, 3)
    assert rep2.from_cache and rep2.used == 12
    assert torch.equal(first, second)
    assert "(from cache)" in rep2.summary()
    # other preparation settings are other cache entries
    _, rep3 = load_dataset(image_folder, 8, 3)
    _, rep4 = load_dataset(image_folder, 16, 1)
    _, rep5 = load_dataset(image_folder, 16, 3, fit="pad")
    assert not (rep3.from_cache or rep4.from_cache or rep5.from_cache)
    assert len(list(cache_dir.glob("*.npy"))) == 4


def test_cache_keeps_the_skipped_files_report(image_folder):
    (image_folder / "broken.png").write_bytes(b"nonsense")
    _, rep1 = load_dataset(image_folder, 8, 3)
    _, rep2 = load_dataset(image_folder, 8, 3)
    assert rep2.from_cache
    assert [(Path(s.path).name, s.reason) for s in rep2.skipped] == \
        [(Path(s.path).name, s.reason) for s in rep1.skipped]
    assert len(rep2.skipped) == 1


def test_cache_is_invalidated_when_a_file_changes_or_is_added(image_folder, make_image):
    first, _ = load_dataset(image_folder, 16, 3)
    target = image_folder / "img_00.png"
    st = target.stat()
    make_image(target, size=(16, 16), seed=999)  # different content
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    changed, rep = load_dataset(image_folder, 16, 3)
    assert not rep.from_cache
    assert not torch.equal(first, changed)
    assert torch.equal(first[1:], changed[1:])  # only the changed file differs
    make_image(image_folder / "zz_new.png", seed=42)
    grown, rep = load_dataset(image_folder, 16, 3)
    assert not rep.from_cache and grown.shape[0] == 13
    _, rep = load_dataset(image_folder, 16, 3)
    assert rep.from_cache


def test_cache_can_be_bypassed_and_a_damaged_entry_is_rebuilt(image_folder, cache_dir):
    _, rep = load_dataset(image_folder, 8, 3, use_cache=False)
    assert rep.cache_file is None and list(cache_dir.glob("*.npy")) == []
    first, rep = load_dataset(image_folder, 8, 3)
    Path(rep.cache_file).write_bytes(b"damaged")
    again, rep = load_dataset(image_folder, 8, 3)
    assert not rep.from_cache and torch.equal(first, again)


# -- DeviceImages ----------------------------------------------------------------------------
def asymmetric_set() -> torch.Tensor:
    """One 1x4x4 image whose left half is 255 and right half 0."""
    img = torch.zeros(1, 1, 4, 4, dtype=torch.uint8)
    img[..., :2] = 255
    return img


def test_device_images_batches_are_floats_in_range():
    data = DeviceImages(asymmetric_set(), torch.device("cpu"), flip=False)
    assert len(data) == 1 and data.shape == (1, 4, 4) and data.on_device
    batch = data.batch(5)
    assert batch.dtype == torch.float32 and batch.shape == (5, 1, 4, 4)
    assert batch.min().item() == -1.0 and batch.max().item() == 1.0
    # without flips every image keeps its left half bright
    assert (batch[..., :2] == 1.0).all() and (batch[..., 2:] == -1.0).all()


def test_device_images_flips_about_half_the_images():
    data = DeviceImages(asymmetric_set(), torch.device("cpu"), flip=True, seed=3)
    batch = data.batch(400)
    flipped = (batch[:, 0, 0, 0] == -1.0)
    assert 140 < int(flipped.sum()) < 260
    # a flipped image is the exact mirror image
    assert (batch[flipped][..., 2:] == 1.0).all() and (batch[flipped][..., :2] == -1.0).all()
    assert (batch[~flipped][..., :2] == 1.0).all()


def test_device_images_state_round_trip_gives_the_same_batches():
    images = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8)
    a = DeviceImages(images, torch.device("cpu"), seed=7)
    a.batch(3)
    state = a.state_dict()
    expected = a.batch(6)
    b = DeviceImages(images, torch.device("cpu"), seed=123)
    b.load_state_dict(state)
    assert torch.equal(b.batch(6), expected)
    c = DeviceImages(images, torch.device("cpu"), seed=7)
    c.batch(3)
    assert torch.equal(c.batch(6), expected)  # the seed decides the stream


def test_device_images_respects_a_memory_budget():
    images = torch.zeros(4, 3, 4, 4, dtype=torch.uint8)
    data = DeviceImages(images, torch.device("cpu"), max_device_bytes=10)
    assert not data.on_device
    assert data.batch(2).shape == (2, 3, 4, 4)
    real = data.real_sample(3)
    assert real.shape == (3, 3, 4, 4) and (real == -1.0).all()
