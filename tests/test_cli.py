"""The ``ganstudio`` command: train, sample, plugins, and user errors (exit 2, one line)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from ganstudio.cli import EXIT_USAGE, main
from ganstudio.core.runs import RunFolder

FAST = ["--device", "cpu", "--precision", "fp32", "--quiet", "--log-steps", "2",
        "--sample-every", "1e9", "--checkpoint-every", "1e9"]


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(code: int, err: str, *fragments: str) -> None:
    assert code == EXIT_USAGE == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture
def trained_run(tmp_path, image_folder, tiny_plugin_file, capsys):
    """A tinygan run of 4 steps trained through the CLI (the test-only folder plugin)."""
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "--model", "tinygan", "--data", str(image_folder),
                             "--out", str(run), "--steps", "4", "--set", "batch_size=3", *FAST)
    assert code == 0, err
    return run


# -- train -----------------------------------------------------------------------------------
def test_train_writes_a_run_and_reports_the_dataset(tmp_path, image_folder, tiny_plugin_file,
                                                    capsys):
    (image_folder / "junk.png").write_bytes(b"junk")
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "--model", "tinygan", "--data", str(image_folder),
                             "--out", str(run), "--steps", "6", "--set", "resolution=16",
                             "--set", "flip=false", *FAST)
    assert code == 0, err
    assert "dataset: 12 images at 16x16, 3 channel(s), 1 skipped" in err
    assert "skipped" in err and "junk.png" in err
    assert "training tinygan on cpu" in err and "completed at step 6" in err
    info = RunFolder(run).read_info()
    assert info["config"]["resolution"] == 16 and info["config"]["flip"] is False
    assert info["plugin"] == "tinyplugin" and info["total_steps"] == 6
    rows, _ = RunFolder(run).read_metrics()
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert (run / "checkpoints" / "ckpt_00000006.pt").is_file()


def test_resume_continues_up_to_the_total(trained_run, capsys):
    code, out, err = run_cli(capsys, "train", "--out", str(trained_run), "--resume",
                             "--steps", "8", *FAST)
    assert code == 0, err
    assert "resuming tinygan" in err and "from step 4 to 8" in err
    rows, _ = RunFolder(trained_run).read_metrics()
    assert [r["step"] for r in rows] == [2, 4, 6, 8]
    assert RunFolder(trained_run).read_info()["total_steps"] == 8


# -- sample ----------------------------------------------------------------------------------
def test_sample_to_a_png_grid(trained_run, tmp_path, capsys):
    out_png = tmp_path / "grid.png"
    code, out, err = run_cli(capsys, "sample", "--run", str(trained_run), "--n", "5",
                             "--out", str(out_png), "--seed", "1", "--device", "cpu")
    assert code == 0, err
    assert "wrote a grid of 5 samples (step 4)" in out
    with Image.open(out_png) as img:
        # 5 samples of 8 px: 3 columns x 2 rows with 2 px padding
        assert img.size == (3 * 10 + 2, 2 * 10 + 2) and img.mode == "RGB"


def test_sample_to_a_folder_is_reproducible_by_seed(trained_run, tmp_path, capsys):
    def sample(folder: str, seed: str) -> list[bytes]:
        code, out, err = run_cli(capsys, "sample", "--run", str(trained_run), "--n", "3",
                                 "--out", str(tmp_path / folder), "--seed", seed)
        assert code == 0, err
        files = sorted((tmp_path / folder).iterdir())
        assert [f.name for f in files] == ["sample_00000.png", "sample_00001.png",
                                           "sample_00002.png"]
        for f in files:
            with Image.open(f) as img:
                assert img.size == (8, 8)
        return [f.read_bytes() for f in files]

    a, b, c = sample("a", "7"), sample("b", "7"), sample("c", "8")
    assert a == b and a != c
    assert len(set(a)) == 3  # three different samples


# -- plugins ---------------------------------------------------------------------------------
def test_plugins_lists_models_sources_and_errors(tmp_path, tiny_plugin_file, capsys):
    folder = tmp_path / "myplugins"
    folder.mkdir()
    tiny_plugin_file.rename(folder / "tinyplugin.py")  # only --plugins-dir has it now
    (folder / "brokenone.py").write_text("raise RuntimeError('cannot start')\n")
    code, out, err = run_cli(capsys, "--plugins-dir", str(folder), "plugins")
    assert code == 0, err
    assert f"plugin folder: {folder}" in out
    assert any(line.startswith("dcgan ") and line.endswith("[built-in] ok")
               for line in out.splitlines())
    assert "model dcgan (gan): DCGAN" in out
    assert "tinyplugin 0.0.1 [folder] ok" in out
    assert "model tinygan (gan): Tiny test GAN" in out
    assert "brokenone [folder] error" in out
    assert "error: failed to import: RuntimeError: cannot start" in out
    # the option also works after the subcommand
    import ganstudio.plugins
    ganstudio.plugins._default = None
    code, out2, err = run_cli(capsys, "plugins", "--plugins-dir", str(folder))
    assert code == 0 and out2 == out


# -- user errors: exit code 2 and one line ---------------------------------------------------
def test_missing_data_folder(tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--model", "dcgan", "--data",
                           str(tmp_path / "no-such-folder"), "--out", str(tmp_path / "r"))
    assert_user_error(code, err, "image folder not found", "no-such-folder")
    afile = tmp_path / "photo.png"
    afile.write_bytes(b"x")
    code, _, err = run_cli(capsys, "train", "--model", "dcgan", "--data", str(afile),
                           "--out", str(tmp_path / "r"))
    assert_user_error(code, err, "--data must be a folder of images, not a file", "photo.png")


def test_unknown_model(tmp_path, image_folder, capsys):
    code, _, err = run_cli(capsys, "train", "--model", "stylegan9", "--data", str(image_folder),
                           "--out", str(tmp_path / "r"))
    assert_user_error(code, err, "unknown model 'stylegan9'", "dcgan")


def test_bad_set_key(tmp_path, image_folder, capsys):
    code, _, err = run_cli(capsys, "train", "--model", "dcgan", "--data", str(image_folder),
                           "--out", str(tmp_path / "r"), "--set", "learning_rate=1")
    assert_user_error(code, err, "unknown setting 'learning_rate'", "lr_d")
    code, _, err = run_cli(capsys, "train", "--model", "dcgan", "--data", str(image_folder),
                           "--out", str(tmp_path / "r"), "--set", "lr_d")
    assert_user_error(code, err, "--set expects key=value")


@pytest.mark.parametrize("setting,fragment", [
    ("batch_size=many", "setting 'batch_size': expected int"),
    ("batch_size=0", "below the minimum"),
    ("resolution=48", "'48' is not one of 32, 64, 128"),
    ("lr_g=nan", "setting 'lr_g'"),
])
def test_bad_set_value(setting, fragment, tmp_path, image_folder, capsys):
    code, _, err = run_cli(capsys, "train", "--model", "dcgan", "--data", str(image_folder),
                           "--out", str(tmp_path / "r"), "--set", setting)
    assert_user_error(code, err, fragment)
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_bad_device_and_steps(tmp_path, image_folder, capsys):
    code, _, err = run_cli(capsys, "train", "--model", "dcgan", "--data", str(image_folder),
                           "--out", str(tmp_path / "r"), "--device", "tpu")
    assert_user_error(code, err, "unknown device 'tpu'")
    code, _, err = run_cli(capsys, "train", "--model", "dcgan", "--data", str(image_folder),
                           "--out", str(tmp_path / "r2"), "--steps", "0")
    assert_user_error(code, err, "--steps")


def test_existing_run_without_resume(trained_run, image_folder, capsys):
    code, _, err = run_cli(capsys, "train", "--model", "tinygan", "--data", str(image_folder),
                           "--out", str(trained_run), "--steps", "8", *FAST)
    assert_user_error(code, err, "already holds a run", "--resume")
    # the run is untouched
    assert RunFolder(trained_run).read_info()["total_steps"] == 4


def test_resume_of_nothing(tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--model", "dcgan", "--out", str(tmp_path / "none"),
                           "--resume")
    assert_user_error(code, err, "nothing to resume")


def test_sample_errors(trained_run, tmp_path, capsys):
    code, _, err = run_cli(capsys, "sample", "--run", str(tmp_path / "not-a-run"),
                           "--out", str(tmp_path / "g.png"))
    assert_user_error(code, err, "not a run folder")
    code, _, err = run_cli(capsys, "sample", "--run", str(trained_run),
                           "--out", str(tmp_path / "g.jpg"))
    assert_user_error(code, err, "a grid is written as PNG")
    assert not (tmp_path / "g.jpg").exists()
    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    code, _, err = run_cli(capsys, "sample", "--run", str(trained_run), "--out", str(afile))
    assert_user_error(code, err, "exists and is not a folder")
    code, _, err = run_cli(capsys, "sample", "--run", str(trained_run),
                           "--out", str(afile / "g.png"))
    assert_user_error(code, err, "cannot write", "notes.txt")
    for ckpt in (trained_run / "checkpoints").iterdir():
        ckpt.unlink()
    code, _, err = run_cli(capsys, "sample", "--run", str(trained_run),
                           "--out", str(tmp_path / "g.png"))
    assert_user_error(code, err, "no usable checkpoint")
    code, _, err = run_cli(capsys, "sample", "--run", str(trained_run), "--n", "0",
                           "--out", str(tmp_path / "g.png"))
    assert_user_error(code, err, "--n must be at least 1")


def test_sample_of_a_run_whose_plugin_is_gone(trained_run, tmp_path, tiny_plugin_file, capsys,
                                              monkeypatch):
    tiny_plugin_file.unlink()
    import ganstudio.plugins
    monkeypatch.setattr(ganstudio.plugins, "_default", None)  # as in a new process
    code, _, err = run_cli(capsys, "sample", "--run", str(trained_run),
                           "--out", str(tmp_path / "g.png"))
    assert_user_error(code, err, "unknown model 'tinygan'")


# -- the real entry points, in subprocesses --------------------------------------------------
def subprocess_env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def test_python_dash_m_ganstudio(tmp_path):
    r = subprocess.run([sys.executable, "-m", "ganstudio", "plugins"], capture_output=True,
                       text=True, timeout=120, env=subprocess_env(), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "model dcgan (gan): DCGAN" in r.stdout


def test_version(capsys):
    import ganstudio
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"ganstudio {ganstudio.__version__}"


def test_console_script_user_error_is_one_line(tmp_path):
    exe = shutil.which("ganstudio") or shutil.which("ganstudio", path=os.path.dirname(sys.executable))
    assert exe, "the ganstudio console script is not installed"
    r = subprocess.run([exe, "train", "--model", "dcgan", "--data", str(tmp_path / "missing"),
                        "--out", str(tmp_path / "r")], capture_output=True, text=True,
                       timeout=120, env=subprocess_env())
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"error: image folder not found: {tmp_path / 'missing'}"]
    assert r.stdout == ""


def test_ctrl_c_stops_cleanly_with_a_checkpoint(tmp_path, image_folder, tiny_plugin_file):
    """SIGINT (Ctrl-C) stops after the current step and writes a checkpoint; exit code 0."""
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ganstudio", "train", "--model", "tinygan", "--data",
         str(image_folder), "--out", str(run), "--steps", "100000000", *FAST],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        metrics = run / "metrics.jsonl"
        deadline = time.monotonic() + 90
        while not (metrics.exists() and metrics.stat().st_size > 0):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "training never logged a metric"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "stopping after this step and writing a checkpoint" in err
    assert "Traceback" not in err
    stopped = [line for line in err.splitlines() if line.startswith("stopped at step ")]
    assert len(stopped) == 1
    step = int(stopped[0].split()[3].rstrip(";"))
    assert step >= 2
    assert (run / "checkpoints" / f"ckpt_{step:08d}.pt").is_file()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a CUDA GPU is present")
def test_cuda_requested_without_a_gpu(tmp_path, image_folder, capsys):
    code, _, err = run_cli(capsys, "train", "--model", "dcgan", "--data", str(image_folder),
                           "--out", str(tmp_path / "r"), "--device", "cuda")
    assert_user_error(code, err, "device 'cuda' was requested but no CUDA GPU is available")


# -- the command package: table, exit-code policy --------------------------------------------
def test_every_command_comes_from_the_table():
    import argparse
    import ganstudio.cli as cli
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    names = [c.name for c in cli.COMMANDS]
    assert len(names) == len(set(names))
    assert set(sub.choices) == set(names) | {a for c in cli.COMMANDS for a in c.aliases}
    source = Path(cli.__file__).read_text()
    assert "importlib" not in source and "import_module" not in source


def test_unexpected_error_is_one_line_with_the_traceback_in_a_log(tmp_path, monkeypatch,
                                                                   capsys):
    import argparse
    from ganstudio.cli.exits import EXIT_FAILED, run_command
    monkeypatch.setenv("GANSTUDIO_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.delenv("GANSTUDIO_TRACEBACK", raising=False)

    def broken(args):
        raise ZeroDivisionError("the plugin divided by zero")

    assert run_command(broken, argparse.Namespace()) == EXIT_FAILED
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    assert err[0].startswith("error: unexpected ZeroDivisionError: the plugin divided by zero;")
    logs = list((tmp_path / "logs").iterdir())
    assert len(logs) == 1 and err[0].endswith(str(logs[0]))
    text = logs[0].read_text()
    assert "Traceback (most recent call last)" in text and "in broken" in text


def test_plugins_check_and_plugin_check_are_one_command(monkeypatch, capsys):
    import ganstudio.testing
    calls = []
    monkeypatch.setattr(ganstudio.testing, "check_command",
                        lambda pm, name, processes: calls.append((pm, name, processes)) or 7)
    assert main(["plugins", "--check", "dcgan"]) == 7
    assert main(["plugin", "check", "dcgan"]) == 7
    assert calls[0] == calls[1] and calls[0][1:] == ("dcgan", True)
    assert main(["plugin", "check", "dcgan", "--no-ddp"]) == 7
    assert main(["plugins", "--check", "dcgan", "--no-ddp"]) == 7
    assert calls[2][1:] == calls[3][1:] == ("dcgan", False)


# -- settings ---------------------------------------------------------------------------------
def test_settings_lists_every_setting_of_a_model(capsys):
    from ganstudio.plugins import get_plugin_manager
    spec = get_plugin_manager().get_model("dcgan")
    code, out, err = run_cli(capsys, "settings", "dcgan")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "dcgan: DCGAN (gan, plugin dcgan)"
    for f in spec.schema:
        row = [ln for ln in lines if ln[2:].split(" ", 1)[0] == f.name]
        assert len(row) == 1, f.name
        assert f" {f.type} " in row[0] and row[0].startswith("*" if f.advanced else " ")
        if f.choices:
            assert row[0].endswith("one of " + ", ".join(str(c) for c in f.choices))
        elif f.min is not None:
            def fmt(v):
                return f"{v:g}" if isinstance(v, float) else str(v)
            assert row[0].endswith(f"{fmt(f.min)} to {fmt(f.max)}"), row[0]
        text = " ".join(ln.strip() for ln in lines[lines.index(row[0]) + 1:][:6])
        assert " ".join(f.help.split())[:40] in text
    row = next(ln for ln in lines if ln.startswith("  batch_size "))
    assert row.split()[1:5] == ["int", "default", "64", "1"] and row.endswith("1 to 65536")
    assert any(ln.startswith("* seed ") and ln.endswith("0 to 2147483647") for ln in lines)
    # `plugins MODEL` is the same command
    code, out2, _ = run_cli(capsys, "plugins", "dcgan")
    assert code == 0 and out2 == out


def test_settings_as_json_and_for_an_unknown_model(capsys):
    from ganstudio.plugins import get_plugin_manager
    spec = get_plugin_manager().get_model("dcgan")
    code, out, err = run_cli(capsys, "settings", "dcgan", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["model"] == "dcgan" and data["kind"] == "gan"
    assert [s["name"] for s in data["settings"]] == [f.name for f in spec.schema]
    by_name = {s["name"]: s for s in data["settings"]}
    assert by_name["resolution"]["choices"] == [32, 64, 128]
    assert by_name["lr_d"]["default"] == 2e-4 and by_name["lr_d"]["max"] == 1.0
    code, _, err = run_cli(capsys, "settings", "stylegan9")
    assert_user_error(code, err, "unknown model 'stylegan9'")
