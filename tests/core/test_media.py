"""Images and videos written at the size asked, with real frame delays, under a
temporary name until complete."""
from __future__ import annotations

import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image

from ganstudio.core.errors import UserError
from ganstudio.core.media import (OutputSize, VideoWriter, gif_delay_ms, spread, write_png,
                                  write_video)


def _frames(n: int, h: int = 12, w: int = 16) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def _gif_info(path):
    delays, sizes = [], set()
    with Image.open(path) as im:
        for i in range(im.n_frames):
            im.seek(i)
            delays.append(im.info["duration"])
            sizes.add(im.size)
        return im.n_frames, delays, sizes


@pytest.mark.parametrize("size,want", [
    (OutputSize(), (16, 12)), (OutputSize(scale=2), (32, 24)), (OutputSize(scale=8), (128, 96)),
    (OutputSize(pixels=64), (64, 48)), (OutputSize(pixels=64, smooth=True), (64, 48))])
def test_png_is_written_at_the_size_asked(tmp_path, size, want):
    arr = _frames(1)[0]
    path = write_png(arr, tmp_path / "grid", size)
    assert path.name == "grid.png"
    with Image.open(path) as im:
        assert im.size == want
        out = np.asarray(im.convert("RGB"))
    if size.scale > 1 and not size.smooth:   # nearest: each pixel becomes a block
        s = size.scale
        assert np.array_equal(out[::s, ::s], arr)
        assert np.array_equal(out[s - 1::s, s - 1::s], arr)
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]   # no temporary left


def test_smooth_scaling_differs_from_nearest(tmp_path):
    arr = _frames(1)[0]
    a = np.asarray(Image.open(write_png(arr, tmp_path / "a.png", OutputSize(scale=4))))
    b = np.asarray(Image.open(write_png(arr, tmp_path / "b.png",
                                        OutputSize(scale=4, smooth=True))))
    assert a.shape == b.shape and not np.array_equal(a, b)


@pytest.mark.parametrize("fps,delay", [(10, 100), (8, 120), (25, 40), (2, 500)])
def test_gif_has_a_real_frame_delay_and_every_frame(tmp_path, fps, delay):
    assert gif_delay_ms(fps) == delay
    path = write_video(_frames(5), 5, tmp_path / "t.gif", fps=fps, size=OutputSize(scale=4))
    n, delays, sizes = _gif_info(path)
    assert n == 5 and sizes == {(64, 48)}
    assert delays == [delay] * 5


def test_mp4_frame_count_size_and_rate(tmp_path):
    path = write_video(_frames(7, 13, 17), 7, tmp_path / "t.mp4", fps=12,
                       size=OutputSize(pixels=100))
    reader = imageio.get_reader(path)
    try:
        assert reader.count_frames() == 7
        meta = reader.get_meta_data()
        assert meta["fps"] == pytest.approx(12)
        w, h = meta["size"]
        assert (w, h) == (100, 76)   # 17x13 scaled to 100 px, sides made even
    finally:
        reader.close()


def test_progress_and_the_temporary_name_until_complete(tmp_path):
    target = tmp_path / "t.gif"
    seen = []

    def progress(done, total):
        names = sorted(p.name for p in tmp_path.iterdir())
        seen.append((done, total, target.exists(), names))

    write_video(_frames(3), 3, target, fps=5, progress=progress)
    assert [(d, t) for d, t, _e, _n in seen] == [(1, 3), (2, 3), (3, 3)]
    assert not any(exists for _d, _t, exists, _n in seen)   # no half file under the name
    # anything on disk meanwhile is the hidden temporary (a GIF writer may write at the end)
    assert all(n.startswith(".t.") for *_x, names in seen for n in names)
    assert [p.name for p in tmp_path.iterdir()] == ["t.gif"]


def test_cancel_and_failure_leave_nothing(tmp_path):
    calls = {"n": 0}

    def cancelled():
        calls["n"] += 1
        return calls["n"] > 2

    assert write_video(_frames(5), 5, tmp_path / "c.mp4", fps=5, cancelled=cancelled) is None
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError):
        with VideoWriter(tmp_path / "f.gif", 5) as w:
            w.append(_frames(1)[0])
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_bad_asks_are_refused_naming_the_reason(tmp_path):
    with pytest.raises(UserError, match="avi"):
        VideoWriter(tmp_path / "x.avi", 5)
    with pytest.raises(UserError, match="frame rate"):
        VideoWriter(tmp_path / "x.gif", 0)
    with pytest.raises(UserError, match="larger than"):
        write_png(_frames(1)[0], tmp_path / "x.png", OutputSize(scale=1000))


def test_spread_holds_frames_when_there_are_few():
    assert spread([1, 2, 3], 6) == [1, 1, 2, 2, 3, 3]
    assert spread(list(range(10)), 4) == [0, 3, 6, 9]
    assert spread([], 3) == []


def test_an_unwritable_video_target_is_one_clear_error_and_no_noise_later(tmp_path, capfd):
    import gc

    import numpy as np
    import pytest

    from ganstudio.core.errors import UserError
    from ganstudio.core.media import VideoWriter

    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    for name in ("x.gif", "x.mp4"):
        with pytest.raises(UserError) as info:
            with VideoWriter(blocker / name, fps=4) as video:
                video.append(np.zeros((8, 8, 3), np.uint8))
        assert "Not a directory" in str(info.value) and ".tmp" not in str(info.value)
    gc.collect()
    assert "Exception ignored" not in capfd.readouterr().err
