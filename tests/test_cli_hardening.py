"""``ganstudio`` under hostile or careless input (issue 15): out-of-range seeds, bad interval
options, huge sample counts, file names with control characters, refused checkpoints, write
errors; each ends in one line and exit 2, or in bounded work, never in a traceback."""
from __future__ import annotations

import pytest
from PIL import Image

from test_cli import FAST, assert_user_error, run_cli, trained_run  # noqa: F401 (fixture)


# -- hardening: bounds, intervals, big sample counts, messages (issue 15) --------------------
@pytest.mark.parametrize("seed", ["99999999999999999999999", str(2**64), str(-2**64), "-1"])
def test_sample_refuses_a_seed_out_of_range(trained_run, tmp_path, capsys, seed):
    code, _, err = run_cli(capsys, "sample", "--run", str(trained_run), "--n", "2",
                           "--out", str(tmp_path / "g.png"), "--seed", seed)
    assert_user_error(code, err, f"--seed must be between 0 and {2**64 - 1}, got {seed}")
    assert not (tmp_path / "g.png").exists()


def test_sample_takes_the_largest_seed(trained_run, tmp_path, capsys):
    code, _, err = run_cli(capsys, "sample", "--run", str(trained_run), "--n", "2",
                           "--out", str(tmp_path / "g.png"), "--seed", str(2**64 - 1))
    assert code == 0, err
    assert (tmp_path / "g.png").is_file()


@pytest.mark.parametrize("option,value,fragment", [
    ("--checkpoint-every", "-5", "--checkpoint-every must be a number of seconds above 0"),
    ("--checkpoint-every", "0", "--checkpoint-every must be a number of seconds above 0"),
    ("--sample-every", "0", "--sample-every must be a number of seconds above 0"),
    ("--sample-every", "nan", "--sample-every must be a number of seconds above 0"),
    ("--log-steps", "-1", "--log-steps must be 0 (off) or a number of steps, got -1"),
    ("--checkpoint-steps", "-3", "--checkpoint-steps must be 0 (off) or a number of steps"),
    ("--sample-steps", "-2", "--sample-steps must be 0 (off) or a number of steps"),
    ("--keep-checkpoints", "0", "--keep-checkpoints must be at least 1, got 0"),
    ("--keep-checkpoints", "-1", "--keep-checkpoints must be at least 1, got -1"),
])
def test_train_refuses_bad_intervals_before_touching_anything(tmp_path, image_folder, capsys,
                                                              option, value, fragment):
    out = tmp_path / "r"
    code, _, err = run_cli(capsys, "train", "--model", "dcgan", "--data", str(image_folder),
                           "--out", str(out), "--steps", "2", option, value)
    assert_user_error(code, err, fragment)
    assert not out.exists()


def test_a_grid_has_a_limit_and_says_to_use_a_folder(trained_run, tmp_path, capsys,
                                                     monkeypatch):
    code, _, err = run_cli(capsys, "sample", "--run", str(trained_run), "--n", "1025",
                           "--out", str(tmp_path / "g.png"))
    assert_user_error(code, err, "--n 1025 is too many for one grid (at most 1024 samples)",
                      "give a folder as --out")
    # the side limit depends on the run's resolution (8 px here: 10 px per cell)
    import ganstudio.cli.sample as sample_cmd
    monkeypatch.setattr(sample_cmd, "GRID_MAX_SIDE", 50)
    code, _, err = run_cli(capsys, "sample", "--run", str(trained_run), "--n", "26",
                           "--out", str(tmp_path / "g.png"))
    assert_user_error(code, err, "at 8 px, at most 25 samples fit in 50 px a side")
    assert not (tmp_path / "g.png").exists()
    code, _, err = run_cli(capsys, "sample", "--run", str(trained_run), "--n", "25",
                           "--out", str(tmp_path / "g.png"))
    assert code == 0, err


def test_many_samples_to_a_folder_are_drawn_in_bounded_batches(trained_run, tmp_path, capsys,
                                                               monkeypatch):
    import ganstudio.core.inference as inference
    real_load = inference.load_trained
    batches = []

    def load_and_watch(*a, **kw):
        spec, model, state = real_load(*a, **kw)
        sample = model.sample
        model.sample = lambda z: batches.append(z.shape[0]) or sample(z)
        return spec, model, state

    monkeypatch.setattr(inference, "load_trained", load_and_watch)
    code, out, err = run_cli(capsys, "sample", "--run", str(trained_run), "--n", "150",
                             "--out", str(tmp_path / "many"), "--seed", "3")
    assert code == 0, err
    assert batches == [64, 64, 22]
    names = sorted(p.name for p in (tmp_path / "many").iterdir())
    assert len(names) == 150 and names[0] == "sample_00000.png" and names[-1] == "sample_00149.png"
    assert "wrote 150 samples (step 4)" in out


def test_count_progress_shows_done_total_and_eta_on_a_terminal():
    import io
    from ganstudio.cli.progress import CountProgress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    progress = CountProgress("writing samples", stream, every_s=0)
    progress(64, 150)
    progress(150, 150)
    progress.finish()
    frames = [f.strip() for f in stream.getvalue().split("\r") if f.strip()]
    assert frames[0].startswith("writing samples: 64/150 (42%), ETA ")
    assert frames[1].startswith("writing samples: 150/150 (100%), ETA 0")
    assert stream.getvalue().endswith("\n")


def test_a_write_error_names_the_users_file_not_a_temporary_one(trained_run, tmp_path, capsys,
                                                                 monkeypatch):
    (tmp_path / "g.png.tmp").mkdir()   # something under an old temporary name: not in the way
    code, _, err = run_cli(capsys, "sample", "--run", str(trained_run), "--n", "2",
                           "--out", str(tmp_path / "g.png"))
    assert code == 0 and (tmp_path / "g.png").is_file(), err

    def disk_full(self, fp, *args, **kwargs):   # the temporary file cannot be written
        raise OSError(28, "No space left on device", getattr(fp, "name", None))

    monkeypatch.setattr(Image.Image, "save", disk_full)
    code, _, err = run_cli(capsys, "sample", "--run", str(trained_run), "--n", "2",
                           "--out", str(tmp_path / "h.png"))
    assert_user_error(code, err, f"cannot write {tmp_path / 'h.png'}:", "No space left")
    assert ".tmp" not in err and not (tmp_path / "h.png").exists()


def test_an_os_error_escaping_a_command_is_one_line_naming_the_users_file(capsys):
    import argparse
    from ganstudio.cli.exits import run_command

    def write(args):
        raise PermissionError(13, "Permission denied", "/data/run/.run.json.4711.tmp")

    assert run_command(write, argparse.Namespace()) == 2
    assert capsys.readouterr().err == "error: /data/run/run.json: Permission denied\n"


def test_user_file_keeps_names_that_are_not_temporary():
    from ganstudio.cli.messages import user_file
    assert user_file("/a/grid.png.tmp") == "/a/grid.png"
    assert user_file("/a/.ckpt_00000004.pt.123.tmp") == "/a/ckpt_00000004.pt"
    assert user_file("/a/notes.tmp") == "/a/notes.tmp"
    assert user_file("/a/grid.png") == "/a/grid.png"


class Smuggled:
    """Not plain data: a checkpoint holding it must be refused, and torch's advice to load
    it anyway never shown."""


def test_a_refused_checkpoint_never_repeats_torchs_unsafe_advice(trained_run, tmp_path, capsys):
    from ganstudio.core.checkpoints import save_checkpoint
    for old in (trained_run / "checkpoints").iterdir():
        old.unlink()
    save_checkpoint({"step": 4, "model": Smuggled()}, trained_run / "checkpoints", 4)
    code, _, err = run_cli(capsys, "sample", "--run", str(trained_run), "--n", "2",
                           "--out", str(tmp_path / "g.png"))
    assert code == 2 and "Traceback" not in err
    assert "refused" in err and "ckpt_00000004.pt" in err
    for advice in ("weights_only", "Re-running", "can still be loaded", "\x1b"):
        assert advice not in err, err


def test_the_unsafe_advice_and_escape_codes_are_cut_from_any_message():
    from ganstudio.cli.messages import error_line, warning_line
    import io
    import torch
    buf = io.BytesIO()
    torch.save({"x": Smuggled()}, buf)
    buf.seek(0)
    with pytest.raises(Exception) as e:
        torch.load(buf, weights_only=True)
    reason = "it holds objects other than plain tensors and values, which are never loaded"
    assert error_line(f"cannot read w.pth: {e.value}") == f"error: cannot read w.pth: {reason}"
    assert warning_line(str(e.value)) == f"warning: {reason}"
    # core's checkpoint message quotes the first line of torch's text in parentheses
    assert error_line(f"c.pt was refused: not plain data ({str(e.value).splitlines()[0]})") \
        == "error: c.pt was refused: not plain data"
    assert error_line("a \x1b[1mbold\x1b[0m claim\nsecond line") == \
        "error: a bold claim\\nsecond line"


def test_printed_file_names_are_escaped(tmp_path, image_folder, tiny_plugin_file, capsys):
    (image_folder / "x\ncompleted at step 999999; checkpoint forged.png").write_bytes(b"junk")
    (image_folder / "\x1b[31mred.png").write_bytes(b"junk")
    code, out, err = run_cli(capsys, "train", "--model", "tinygan", "--data", str(image_folder),
                             "--out", str(tmp_path / "run"), "--steps", "2", *FAST)
    assert code == 0, err
    assert "\x1b" not in err
    assert not any(line.startswith("completed at step 999999") for line in err.splitlines())
    assert "x\\ncompleted at step 999999; checkpoint forged.png" in err
    assert "\\x1b[31mred.png" in err


def test_a_folder_as_the_content_image_is_named_as_a_folder(tmp_path, capsys):
    style = tmp_path / "s.png"
    Image.new("RGB", (8, 8)).save(style)
    (tmp_path / "pictures").mkdir()
    code, _, err = run_cli(capsys, "stylize", str(tmp_path / "pictures"), str(style),
                           "-o", str(tmp_path / "o.png"))
    assert_user_error(code, err, f"the content image {tmp_path / 'pictures'} is a folder")


def test_plugin_new_with_a_file_as_dir(tmp_path, capsys):
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    code, _, err = run_cli(capsys, "plugin", "new", "my-gan", "--dir", str(afile))
    assert_user_error(code, err, f"--dir {afile} is a file, not a folder")


def test_resume_names_a_missing_run_and_refuses_a_target_already_passed(tmp_path, capsys):
    from ganstudio.cli import main

    assert main(["train", "--out", str(tmp_path / "nope"), "--resume", "--steps", "5"]) == 2
    err = capsys.readouterr().err
    assert "nothing to resume" in err and "no run.json" in err
    run = tmp_path / "r"
    data = tmp_path / "d"
    data.mkdir()
    from PIL import Image
    for i in range(4):
        Image.new("RGB", (32, 32), (40 * i, 90, 200 - 30 * i)).save(data / f"{i}.png")
    assert main(["train", "--model", "dcgan", "--data", str(data), "--out", str(run),
                 "--steps", "3", "--device", "cpu", "--quiet", "--no-estimate",
                 "--set", "resolution=32", "--set", "batch_size=2",
                 "--set", "g_features=4", "--set", "d_features=4"]) == 0
    capsys.readouterr()
    info_before = (run / "run.json").read_bytes()
    assert main(["train", "--out", str(run), "--resume", "--steps", "2", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "already at step 3" in err and "--steps" in err
    assert (run / "run.json").read_bytes() == info_before
