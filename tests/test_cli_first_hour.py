"""What ``ganstudio train`` tells a new user at the start: the measured run time (and
faster options for a long run), files that are not images, a greyscale folder."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ganstudio.cli import main
from ganstudio.cli.estimate import estimate_lines, option_words
from ganstudio.core.config import parse_set_args, resolve_config
from ganstudio.core.estimate import faster_alternatives, measure
from ganstudio.core.runs import RunFolder
from ganstudio.plugins import get_plugin_manager

FAST = ["--device", "cpu", "--precision", "fp32", "--quiet", "--log-steps", "2",
        "--sample-every", "1e9", "--checkpoint-every", "1e9"]
TINY = ["--set", "resolution=32", "--set", "batch_size=2", "--set", "g_features=4",
        "--set", "d_features=4"]


def test_option_words_are_exact_options():
    assert option_words({"resolution": 32, "batch_size": 16, "steps": 2500}) == \
        "--set resolution=32 --set batch_size=16 --steps 2500"
    assert option_words({"steps": 40}) == "--steps 40"


def test_a_long_run_gets_faster_options_that_the_command_accepts():
    spec = get_plugin_manager().get_model("dcgan")
    tiny = {"resolution": 32, "batch_size": 4, "g_features": 8, "d_features": 8}
    asked = measure(spec, tiny, 2000, device="cpu", precision="fp32", timed_steps=2)
    target = asked.total_seconds / 3
    alts = faster_alternatives(spec, tiny, 2000, target, device="cpu", precision="fp32",
                               measured=asked, timed_steps=2)
    lines = estimate_lines(asked, alts, long_s=target)
    assert lines[0].startswith("estimated time: about ")
    assert "2,000 steps on cpu (fp32" in lines[0]
    assert len(lines) == 2 and lines[1].startswith("faster on this device: ")
    for alt, offer in zip(alts, lines[1][len("faster on this device: "):].split("; or ")):
        words = offer.split(" (about ")[0].split()
        sets = [words[i + 1] for i, w in enumerate(words) if w == "--set"]
        config = resolve_config(spec.schema, {**tiny, **parse_set_args(sets)})
        for key, value in alt.changes.items():
            if key == "steps":
                assert words[words.index("--steps") + 1] == str(value)
            else:
                assert config[key] == value
    # a short run gets the estimate only
    assert len(estimate_lines(asked, alts, long_s=asked.total_seconds * 2)) == 1


def test_train_prints_the_estimate_unless_asked_not_to(tmp_path, image_folder, capsys):
    code = main(["train", "--model", "dcgan", "--data", str(image_folder), "--out",
                 str(tmp_path / "run"), "--steps", "3", *TINY, *FAST])
    err = capsys.readouterr().err
    assert code == 0
    line = next(x for x in err.splitlines() if x.startswith("estimated time: about "))
    assert "for 3 steps on cpu (fp32" in line
    code = main(["train", "--model", "dcgan", "--data", str(image_folder), "--out",
                 str(tmp_path / "run2"), "--steps", "2", "--no-estimate", *TINY, *FAST])
    assert code == 0 and "estimated time" not in capsys.readouterr().err


def _grey_folder(root, n=6):
    rng = np.random.default_rng(1)
    root.mkdir()
    for i in range(n):
        v = rng.integers(0, 256, (16, 16), dtype=np.uint8)
        Image.fromarray(np.stack([v, v, v], axis=2)).save(root / f"g{i}.png")
    (root / "notes.txt").write_text("not an image")
    (root / "Thumbs.db").write_bytes(b"\0" * 10)
    return root


def test_greyscale_folder_trains_in_one_channel_and_other_files_are_counted(tmp_path, capsys):
    data = _grey_folder(tmp_path / "grey")
    out = tmp_path / "run"
    code = main(["train", "--model", "dcgan", "--data", str(data), "--out", str(out),
                 "--steps", "2", "--no-estimate", *TINY, *FAST])
    err = capsys.readouterr().err
    assert code == 0
    assert "2 other file(s) not images" in err
    assert "every image is greyscale: training in 1 channel" in err
    info = RunFolder(out).read_info()
    assert info["config"]["channels"] == 1 and info["dataset"]["channels"] == 1
    # said in so many words: the user did not set it
    assert "channels=1" in RunFolder(out).events_path.read_text()
    # an explicit choice is kept
    code = main(["train", "--model", "dcgan", "--data", str(data), "--out",
                 str(tmp_path / "run3"), "--steps", "2", "--no-estimate", "--set",
                 "channels=3", *TINY, *FAST])
    err = capsys.readouterr().err
    assert code == 0 and "greyscale: training in 1 channel" not in err
    assert RunFolder(tmp_path / "run3").read_info()["config"]["channels"] == 3


def test_estimate_goes_to_the_stream_given():
    from ganstudio.cli.estimate import print_estimate
    spec = get_plugin_manager().get_model("dcgan")
    config = resolve_config(spec.schema, {"resolution": 32, "batch_size": 2,
                                          "g_features": 4, "d_features": 4})
    buf = io.StringIO()
    est = print_estimate(spec, config, 50, device="cpu", precision="fp32", out=buf)
    assert est is not None and est.steps == 50
    assert buf.getvalue().startswith("estimated time: about ")
    assert print_estimate(spec, config, 50, device="cpu", precision="fp32", start_step=50,
                          out=buf) is None


@pytest.mark.parametrize("seconds,text", [(47100, "13 h 05 min"), (125, "2 min 05 s")])
def test_estimate_wording_uses_durations(seconds, text):
    from ganstudio.core.estimate import RunEstimate
    est = RunEstimate(steps=100, seconds_per_step=seconds / 100, total_seconds=seconds,
                      images_per_second=12.0, device="cpu", precision="fp32", config={})
    assert f"about {text} for 100 steps" in estimate_lines(est, [])[0]
