"""``ganstudio stylize`` / ``stylize --net`` / ``stylize-train``: outputs and exit codes."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganstudio.cli import main
from ganstudio_style.vgg import random_vgg_state

FAST = ["--set", "style_layers=relu1_1,relu2_1", "--set", "content_layer=relu3_1"]


@pytest.fixture(autouse=True)
def _no_torch_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cli")
    torch.save(random_vgg_state("relu4_2", dtype=torch.float16), d / "vgg.pth")
    torch.save({"features.0.weight": torch.zeros(64, 3, 7, 7)}, d / "wrong_shape.pth")
    torch.save({"backbone.conv.weight": torch.zeros(3)}, d / "wrong_keys.pth")
    yy, xx = np.mgrid[0:30, 0:40]
    Image.fromarray(np.stack([xx * 6, yy * 8, xx + yy], -1).astype(np.uint8)).save(d / "c.png")
    s = np.zeros((24, 24, 3), np.uint8)
    s[::3] = 255
    Image.fromarray(s).save(d / "s1.png")
    Image.fromarray(255 - s.transpose(1, 0, 2)).save(d / "s2.jpg")
    photos = d / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray((rng.random((36, 36, 3)) * 255).astype(np.uint8)).save(photos / f"{i}.png")
    return {"dir": d, "vgg": d / "vgg.pth", "content": d / "c.png", "s1": d / "s1.png",
            "s2": d / "s2.jpg", "photos": photos}


def stylize(files, *extra: str) -> int:
    return main(["stylize", str(files["content"]), str(files["s1"]), "--size", "24",
                 "--steps", "4", "--device", "cpu", "--quiet", *FAST, *extra])


def test_stylize_writes_the_image_at_the_asked_size(files, tmp_path, capsys):
    out = tmp_path / "out.png"
    assert stylize(files, "-o", str(out), "--vgg-weights", str(files["vgg"])) == 0
    with Image.open(out) as img:
        assert img.size == (24, 18)
    said = capsys.readouterr().out
    assert f"wrote {out} (24x18, 4 iterations, 4 loss evaluations" in said


def test_two_styles_blended_with_a_kept_run_folder(files, tmp_path):
    out, run = tmp_path / "b.jpg", tmp_path / "run"
    code = main(["stylize", str(files["content"]), str(files["s1"]), str(files["s2"]),
                 "--blend", "0.7,0.3", "-o", str(out), "--size", "20", "--steps", "3",
                 "--optimizer", "adam", "--preserve-colors", "--device", "cpu", "--quiet",
                 "--run", str(run), "--vgg-weights", str(files["vgg"]), *FAST])
    assert code == 0 and out.is_file()
    import json
    config = json.loads((run / "run.json").read_text())["config"]
    assert config["style_blend"] == "0.7,0.3" and config["preserve_colors"] is True
    assert config["style"] == f"{files['s1']}|{files['s2']}"
    assert len((run / "metrics.jsonl").read_text().splitlines()) >= 1


@pytest.mark.parametrize("weights, needle", [
    ("wrong_shape.pth", "features.0.weight is (64, 3, 7, 7), VGG-19 has (64, 3, 3, 3)"),
    ("wrong_keys.pth", "unexpected keys backbone.conv.weight"),
    ("absent.pth", "VGG weights file not found"),
])
def test_wrong_weights_exit_2_with_the_reason(files, tmp_path, capsys, weights, needle):
    code = stylize(files, "-o", str(tmp_path / "o.png"),
                   "--vgg-weights", str(files["dir"] / weights))
    err = capsys.readouterr().err
    assert code == 2 and needle in err and err.count("\n") == 1
    assert not (tmp_path / "o.png").exists()


def test_missing_weights_say_which_file_and_where(files, tmp_path, capsys):
    assert stylize(files, "-o", str(tmp_path / "o.png")) == 2
    err = capsys.readouterr().err
    assert "vgg19-dcbb9e9d.pth" in err and str(tmp_path / "torch_home" / "hub") in err


@pytest.mark.parametrize("argv, needle", [
    (["stylize", "{content}", "-o", "{tmp}/o.png"], "at least one style image"),
    (["stylize", "{dir}/nope.png", "{s1}", "-o", "{tmp}/o.png"], "content image not found"),
    (["stylize", "{content}", "{s1}", "-o", "{tmp}/o.gif2"], "give an image file name"),
    (["stylize", "{content}", "{s1}", "-o", "{tmp}/o.png", "--set", "size=3"],
     "below the minimum"),
    (["stylize", "{content}", "{s1}", "{s2}", "--blend", "1", "-o", "{tmp}/o.png"],
     "1 weight(s) for 2 style image(s)"),
    (["stylize", "{content}", "{s1}", "-o", "{tmp}/o.png", "--set", "bogus=1"],
     "unknown setting 'bogus'"),
    (["stylize", "--net", "{tmp}", "{content}", "-o", "{tmp}/o.png"], "run.json"),
])
def test_user_errors_exit_2(files, tmp_path, capsys, argv, needle):
    fmt = {k: str(v) for k, v in files.items()} | {"tmp": str(tmp_path)}
    argv = [a.format(**fmt) for a in argv] + ["--vgg-weights", str(files["vgg"])]
    assert main(argv) == 2
    assert needle in capsys.readouterr().err


def test_train_then_apply_a_fast_network(files, tmp_path, capsys):
    run = tmp_path / "net"
    code = main(["stylize-train", str(files["s1"]), "--data", str(files["photos"]),
                 "--out", str(run), "--steps", "3", "--vgg-weights", str(files["vgg"]),
                 "--device", "cpu", "--quiet", "--set", "resolution=32", "--set", "width=4",
                 "--set", "res_blocks=1", "--set", "batch_size=2",
                 "--set", "style_layers=relu1_2,relu2_2", "--set", "content_layer=relu2_2"])
    assert code == 0 and list((run / "checkpoints").glob("ckpt_*.pt"))
    capsys.readouterr()
    # the trained network exports to ONNX from the command line as from the Style tab
    assert main(["export", "--run", str(run), "-o", str(tmp_path / "net.onnx")]) == 0, \
        capsys.readouterr().err
    said = capsys.readouterr().out
    assert "net.onnx" in said and "onnxruntime" in said, said
    import onnxruntime as ort
    session = ort.InferenceSession(str(tmp_path / "net.onnx"),
                                   providers=["CPUExecutionProvider"])
    picture = np.random.default_rng(1).random((1, 3, 30, 41)).astype(np.float32)
    assert session.run(None, {"input": picture})[0].shape == (1, 3, 30, 41)
    out = tmp_path / "styled"
    assert main(["stylize", "--net", str(run), str(files["photos"]), str(files["content"]),
                 "-o", str(out), "--device", "cpu", "--quiet"]) == 0
    said = capsys.readouterr().out
    assert "stylized 5 image(s)" in said and "ms per image" in said
    assert sorted(p.name for p in out.iterdir()) == ["0.png", "1.png", "2.png", "3.png", "c.png"]
    with Image.open(out / "c.png") as img:
        assert img.size == (40, 30)
    assert main(["stylize-train", str(files["dir"] / "none.png"), "--data", str(files["photos"]),
                 "--out", str(tmp_path / "x")]) == 2


def test_console_script_exit_code(files, tmp_path):
    """The real entry point: a user error is one line on stderr and exit status 2."""
    env = dict(os.environ, TORCH_HOME=str(tmp_path / "th"))
    proc = subprocess.run([sys.executable, "-m", "ganstudio", "stylize", str(files["content"]),
                           str(files["s1"]), "-o", str(tmp_path / "o.png"), "--device", "cpu"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: VGG-19 ImageNet weights are needed")
    assert "Traceback" not in proc.stderr


def test_ganstudio_reaches_the_style_plugin_only_through_declared_doors():
    """No module of ``ganstudio`` names the style plugin's model ids or fetches the plugin's
    module; the studio never imports the command line (the old cycle cli -> gui ->
    style panel -> cli is gone)."""
    import ast
    import ganstudio
    from ganstudio_style.fast import MODEL_ID as FAST_ID
    from ganstudio_style.gatys import MODEL_ID
    package = Path(ganstudio.__file__).resolve().parent
    named, gui_to_cli = [], []
    for path in sorted(package.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        named += [f"{path.relative_to(package)} names {i}" for i in (MODEL_ID, FAST_ID)
                  if i in text]
        for back_door in ("style_tools", "cli_stylize", "load_style_net", "result_image",
                          ".evaluations"):
            if back_door in text:
                named.append(f"{path.relative_to(package)} uses {back_door}")
        if path.parent.name == "gui":
            for node in ast.walk(ast.parse(text)):
                mods = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                        [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                gui_to_cli += [f"{path.name} imports {m}" for m in mods
                               if m == "ganstudio.cli" or m.startswith("ganstudio.cli.")]
    assert MODEL_ID == "style-transfer" and FAST_ID == "fast-style"  # the scan looks for these
    assert named == [] and gui_to_cli == []
    assert not (package / "gui" / "style_panel.py").exists()
