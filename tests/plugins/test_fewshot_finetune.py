"""Fine-tuning the few-shot GAN from the command line: ``ganstudio train --init-from``."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganstudio import testing as kit
from ganstudio.cli import main

FAST = ["--device", "cpu", "--precision", "fp32", "--quiet", "--log-steps", "1",
        "--sample-steps", "1000", "--checkpoint-every", "1e9", "--no-monitors"]
TINY = ["--set", "resolution=64", "--set", "g_features=4", "--set", "d_features=4",
        "--set", "batch_size=4"]


def _folder(root: Path, seed: int, n: int = 8) -> Path:
    root.mkdir(parents=True)
    for i, img in enumerate(kit.tiny_images(n, 3, 64, seed=seed)):
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(root / f"{i:02d}.png")
    return root


def _grid(run: Path, step: int) -> np.ndarray:
    return np.asarray(Image.open(run / "samples" / f"step_{step:08d}.png"))


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ft")
    run = root / "source"
    code = main(["train", "--model", "fewshot", "--data", str(_folder(root / "a", 1)),
                 "--out", str(run), "--steps", "2", *TINY, *FAST])
    assert code == 0
    return run


def test_finetune_starts_from_the_source_grid_with_freezed(source, tmp_path, capsys):
    new = tmp_path / "new"
    code = main(["train", "--init-from", f"{source}:2", "--data",
                 str(_folder(tmp_path / "b", 2, n=6)), "--out", str(new), "--steps", "1",
                 "--set", "freeze_d=2", *FAST])
    _out, err = capsys.readouterr()
    assert code == 0, err
    assert f"fine-tuning: starting from the networks of {source} at step 2" in err
    assert np.array_equal(_grid(new, 0), _grid(source, 2))
    info = json.loads((new / "run.json").read_text())
    assert info["model_id"] == "fewshot"                    # taken from the source run
    assert info["init_from"]["run"] == str(source) and info["init_from"]["step"] == 2
    assert info["config"]["g_features"] == 4 and info["config"]["freeze_d"] == 2
    assert info["dataset"]["images"] == 6 and info["dataset"]["folder"].endswith("b")


def test_finetune_refuses_another_resolution(source, tmp_path, capsys):
    code = main(["train", "--init-from", str(source), "--data",
                 str(_folder(tmp_path / "b", 2, n=4)), "--out", str(tmp_path / "new"),
                 "--steps", "1", "--set", "resolution=128", *FAST])
    _out, err = capsys.readouterr()
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert "do not fit this model" in line and "resolution 64 there, 128 here" in line
    assert "Traceback" not in err
