"""The explorer's commands: seeds, video, project, nearest, best, export (in-process)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import explore_support as es


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("explore_cli")
    es.write_training_images(base / "images", 10)
    return es.train_run(base / "run", base / "images", es.plugin_manager(), steps=30,
                        checkpoint_every=15)


@pytest.fixture
def cli(plugins_dir, capsys):
    """``cli(*argv) -> (exit code, stdout, stderr)`` with the test model installed."""
    from ganstudio.cli import main
    es.write_plugin_file(plugins_dir)

    def call(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err
    return call


def test_seeds_grid_is_reproducible(cli, run_dir, tmp_path):
    code, out, err = cli("seeds", "--run", run_dir, "--seeds", "0-3", "-o", tmp_path / "a.png",
                         "--device", "cpu")
    assert code == 0, err
    assert "wrote 4 samples (seeds 0..3" in out
    cli("seeds", "--run", run_dir, "--seeds", "0-3", "-o", tmp_path / "b.png", "--device", "cpu")
    a = np.asarray(Image.open(tmp_path / "a.png"))
    b = np.asarray(Image.open(tmp_path / "b.png"))
    assert a.shape[0] > 32 and np.array_equal(a, b)
    code, _out, err = cli("seeds", "--run", run_dir, "--seeds", "0-3", "--truncation", "0.3",
                          "-o", tmp_path / "c.png")
    assert code == 0 and not np.array_equal(a, np.asarray(Image.open(tmp_path / "c.png")))


def test_video_loop_gif(cli, run_dir, tmp_path):
    import imageio.v2 as imageio
    code, out, err = cli("video", "--run", run_dir, "--seeds", "3,17,42", "--seconds", "1",
                         "--fps", "10", "--size", "32", "--truncation", "0.7",
                         "-o", tmp_path / "loop.gif")
    assert code == 0, err
    assert "10 frames at 10 fps" in out and "through 3 points" in out
    assert len(imageio.mimread(tmp_path / "loop.gif")) == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loop.gif"]


def test_project_writes_latent_that_video_accepts(cli, run_dir, tmp_path, make_image):
    photo = make_image(tmp_path / "photo.jpg", size=(40, 30), seed=3)
    out = tmp_path / "out"
    code, stdout, err = cli("project", "--run", run_dir, photo, "-o", out, "--steps", "30",
                            "--pin")
    assert code == 0, err
    assert {p.name for p in out.iterdir()} == {"photo_projected.png", "photo_compare.png",
                                               "photo.npy", "photo.json"}
    info = json.loads((out / "photo.json").read_text())
    assert 0 <= info["error"] < 1 and info["steps"] == 30
    assert f"error {info['error']:.4f}" in stdout
    pins = json.loads((run_dir / "explore.json").read_text())["pins"]
    assert {"latent": "explore/photo.npy", "label": "photo"} in pins
    code, _o, err = cli("video", "--run", run_dir, "--seeds", f"3,{out / 'photo.npy'}",
                        "--seconds", "0.5", "--fps", "8", "--size", "16",
                        "-o", tmp_path / "p.gif")
    assert code == 0, err


def test_nearest_and_best(cli, run_dir, tmp_path):
    code, out, err = cli("nearest", "--run", run_dir, "--n", "24", "-o", tmp_path / "nn.png")
    assert code == 0, err
    assert "of 24 samples closer to a training image than training images are to each other" \
        in out
    assert Image.open(tmp_path / "nn.png").size[0] > 64
    code, out, err = cli("best", "--run", run_dir, "--samples", "16")
    assert code == 0, err
    assert out.count("  step ") == 2 and out.count("<- best") == 1
    best = json.loads((run_dir / "explore.json").read_text())["best_step"]
    assert f"best checkpoint: step {best}" in out


def test_export_onnx_and_weights(cli, run_dir, tmp_path):
    code, out, err = cli("export", "--run", run_dir, "--format", "onnx", "--checkpoint", "15",
                         "-o", tmp_path / "g.onnx")
    assert code == 0, err
    assert "(ONNX, step 15)" in out and "checked in onnxruntime" in out
    code, out, err = cli("export", "--run", run_dir, "-o", tmp_path / "g.safetensors")
    assert code == 0 and "as safetensors" in out


@pytest.mark.parametrize("argv, message", [
    (["seeds", "--seeds", "x"], "'x' is not a seed"),
    (["seeds", "--seeds", "1", "-o", "{tmp}/g.jpg"], "name it .png"),
    (["video", "--seeds", "1,2", "-o", "{tmp}/file/loop.mp4"], "cannot write"),
    (["video", "--seeds", "1,2", "-o", "{tmp}/loop.avi"], ".mp4 or .gif"),
    (["project", "{tmp}/file", "-o", "{tmp}/o"], "cannot read picture"),
    (["export", "--checkpoint", "best", "-o", "{tmp}/g.pt"], "no best checkpoint"),
    # a folder that exists and lets nothing new in: said before any work, not as a failed
    # export naming a temporary file
    (["export", "-o", "/proc/g.onnx"], "cannot write /proc/g.onnx: no file can be created"),
    (["export", "-o", "/proc/g.safetensors"], "cannot write /proc/g.safetensors: no file"),
    (["video", "--seeds", "1,2", "-o", "/proc/loop.gif"], "cannot write /proc/loop.gif: no"),
])
def test_clear_errors(cli, run_dir, tmp_path, argv, message):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (run / "explore.json").unlink(missing_ok=True)
    (tmp_path / "file").write_text("not a picture")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if "-o" not in argv:
        argv += ["-o", str(tmp_path / "g.png")]
    code, out, err = cli(*argv[:1], "--run", run, *argv[1:])
    assert code == 2 and message in err and "Traceback" not in err, err


def test_run_without_checkpoint_and_model_without_latent(cli, tmp_path, image_folder):
    from ganstudio.core.runs import RunFolder
    empty = RunFolder(tmp_path / "empty")
    empty.create({"model_id": "explgan", "config": {}, "plugin": "x"})
    code, _o, err = cli("seeds", "--run", empty.path, "-o", tmp_path / "g.png")
    assert code == 2 and "no checkpoint" in err
    nolat = es.train_run(tmp_path / "nolat", image_folder, es.plugin_manager(),
                         model="explgan-nolatent", steps=2)
    code, _o, err = cli("video", "--run", nolat, "--seeds", "1,2", "-o", tmp_path / "v.gif")
    assert code == 2 and "declares no latent space" in err


def test_seeds_grid_labels_each_sample_with_its_seed(cli, run_dir, tmp_path):
    cli("seeds", "--run", run_dir, "--seeds", "5,7", "-o", tmp_path / "l.png", "--columns", "2",
        "--device", "cpu")
    cli("seeds", "--run", run_dir, "--seeds", "5,7", "-o", tmp_path / "n.png", "--columns", "2",
        "--device", "cpu", "--no-labels")
    labelled = np.asarray(Image.open(tmp_path / "l.png"))
    plain = np.asarray(Image.open(tmp_path / "n.png"))
    from ganstudio.core.images import LABEL_HEIGHT
    assert labelled.shape[0] == plain.shape[0] + LABEL_HEIGHT       # one row, one strip
    assert labelled.shape[1] == plain.shape[1]
    strip = labelled[plain.shape[0] - 2:plain.shape[0] - 2 + LABEL_HEIGHT]
    assert strip.max() > 128                       # text drawn under the samples
    # the samples themselves are the same pictures
    assert np.array_equal(labelled[2:34, 2:34], plain[2:34, 2:34])


def test_grid_labels_are_drawn_under_their_own_cell():
    import torch
    from ganstudio.core.images import LABEL_HEIGHT, make_grid
    imgs = torch.full((3, 1, 8, 8), -1.0)
    grid = make_grid(imgs, nrow=3, padding=2, min_cell=16, labels=["1", "", "33"])
    assert grid.shape == (2 + 16 + LABEL_HEIGHT + 2, 2 + 3 * (16 + 2), 1)
    strips = [grid[18:18 + LABEL_HEIGHT, 2 + i * 18:2 + i * 18 + 16] for i in range(3)]
    assert strips[0].max() > 128 and strips[1].max() == 0 and strips[2].max() > 128
    with pytest.raises(ValueError):
        make_grid(imgs, labels=["1"])
