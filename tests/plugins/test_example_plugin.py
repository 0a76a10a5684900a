"""The example third-party plugin (plugins/example_mlp_gan) installed with pip, found
through its entry point, checked, trained from the CLI and shown in the studio.

pip installs a copy into a temporary ``--target`` folder (no build isolation, no
dependencies: fast and offline); the subprocesses see it through PYTHONPATH and
this process only inside one test, so nothing is left installed afterwards.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "plugins" / "example_mlp_gan"
ENTRY_POINT, MODULE, MODEL_ID = "mlp_gan", "ganstudio_mlp_gan", "mlp-gan"


def pip_install_target(source: Path, workdir: Path) -> Path:
    """``pip install --target`` a copy of ``source`` (the build writes into its tree)."""
    copy = workdir / "src"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "*.egg-info",
                                                                "__pycache__"))
    target = workdir / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
         "--no-index", "--disable-pip-version-check", "-q", "--target", str(target), str(copy)],
        capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return target


def env_with(target: Path, tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(target)] + [p for p in [env.get("PYTHONPATH")] if p])
    env["GANSTUDIO_PLUGINS_DIR"] = str(tmp / "no_user_plugins")
    env["GANSTUDIO_CACHE_DIR"] = str(tmp / "cache")
    env.pop("GANSTUDIO_BLOCK_PLUGINS", None)
    return env


def run_python(code: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=240)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("example_plugin")
    return pip_install_target(EXAMPLE, work), work


def test_pip_installs_the_package_with_its_entry_point(installed):
    target, _ = installed
    info = target / "ganstudio_mlp_gan-1.0.0.dist-info"
    assert (target / MODULE / "model.py").is_file()
    entry_points = (info / "entry_points.txt").read_text()
    assert "[ganstudio.plugins]" in entry_points and f"{ENTRY_POINT} = {MODULE}" in entry_points


def test_found_through_its_entry_point_and_passes_the_check(installed):
    target, work = installed
    code = ("import sys; from ganstudio.cli import main\n"
            "main(['plugins']); print('=====', flush=True)\n"
            f"sys.exit(main(['plugins', '--check', '{ENTRY_POINT}']))\n")
    proc = run_python(code, env_with(target, work), work)
    listing, report = proc.stdout.split("=====\n")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{ENTRY_POINT} 1.0.0 [entry point] ok" in listing
    assert f"model {MODEL_ID} (gan): Fully connected GAN (MLP)" in listing
    assert f"PASS  load     entry point plugin '{ENTRY_POINT}' 1.0.0: plugin API 1" in report
    for check in ("schema", "build", "steps", "samples", "state", "declared", "resume", "bf16",
                  "latent", "onnx"):
        assert f"PASS  {check:<8}" in report, report
    assert "PASS  ddp      two gloo processes trained a few steps" in report  # declares ddp
    assert "passed: 12 passed, 0 passed with notes, 0 skipped, 0 failed" in report


def test_trains_from_the_cli_and_samples(installed, image_folder):
    target, work = installed
    run = work / "run"
    code = ("import sys; from ganstudio.cli import main\n"
            f"rc = main(['train', '--model', '{MODEL_ID}', '--data', {str(image_folder)!r},"
            f" '--out', {str(run)!r}, '--steps', '3', '--log-steps', '1', '--quiet',"
            " '--set', 'resolution=16', '--set', 'batch_size=4', '--set', 'g_width=16',"
            " '--set', 'd_width=16'])\n"
            f"rc = rc or main(['sample', '--run', {str(run)!r}, '--n', '4', '--out',"
            f" {str(work / 'grid.png')!r}, '--seed', '1'])\n"
            "sys.exit(rc)\n")
    proc = run_python(code, env_with(target, work), work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    info = json.loads((run / "run.json").read_text())
    assert info["model_id"] == MODEL_ID
    assert info["plugin"] == ENTRY_POINT and info["plugin_version"] == "1.0.0"
    assert info["config"]["channels"] == 1 and info["config"]["g_width"] == 16
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(0 < r["loss_d"] < 10 and 0 < r["d_real"] < 1 for r in rows)
    # the built-in csvlog listener wrote the same points
    csv_lines = (run / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("step,time,loss_d,loss_g")
    assert [line.split(",")[0] for line in csv_lines[1:]] == ["1", "2", "3"]
    assert list((run / "checkpoints").glob("ckpt_00000003.pt"))
    from PIL import Image
    grid = Image.open(work / "grid.png")
    assert grid.mode == "L" and grid.size == (2 + 2 * 18, 2 + 2 * 18)  # 2x2 cells of 16 px


def test_shown_in_the_studio(installed, qtbot_or_skip, monkeypatch):
    target, _ = installed
    monkeypatch.syspath_prepend(str(target))  # undone after the test
    try:
        from ganstudio.plugins import PluginManager
        pm = PluginManager(load_folder=False)
        info = pm.plugins[ENTRY_POINT]
        assert info.source == "entry point" and info.status == "ok", info.error
        from ganstudio.gui.model_panel import ModelPanel
        panel = ModelPanel()
        qtbot_or_skip.addWidget(panel)
        panel.set_models(pm.models(kind="gan"))
        assert panel.select_model(MODEL_ID)
        assert panel.current_spec().id == MODEL_ID
        assert "Fully connected GAN (MLP)" in panel.combo.currentText()
        config = panel.config()
        assert config["g_width"] == 256 and config["channels"] == 1 and config["resolution"] == 28
    finally:
        for name in [m for m in sys.modules if m == MODULE or m.startswith(MODULE + ".")]:
            del sys.modules[name]


@pytest.fixture
def qtbot_or_skip(request):
    pytest.importorskip("PySide6")
    pytest.importorskip("ganstudio.gui.model_panel")
    return request.getfixturevalue("qtbot")


def test_nothing_is_left_installed():
    assert MODULE not in sys.modules
    names = {ep.name for ep in metadata.entry_points(group="ganstudio.plugins")}
    assert ENTRY_POINT not in names
