"""``ganstudio plugin new NAME``: the skeleton package installs with pip and passes the
conformance kit unchanged, both from ``--check`` and as its own pytest suite."""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ganstudio.cli import main
from ganstudio.cli.plugin_skeleton import PluginNames, write_skeleton
from ganstudio.core.errors import UserError



def pip_install_target(source: Path, workdir: Path) -> Path:
    """``pip install --no-deps --no-build-isolation --target`` a copy of ``source``."""
    copy = workdir / "src"
    shutil.copytree(source, copy)
    target = workdir / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
         "--no-index", "--disable-pip-version-check", "-q", "--target", str(target), str(copy)],
        capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return target


def run_python(code: str, target: Path, tmp: Path) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter that sees the ``--target`` install only."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(target)] + [p for p in [env.get("PYTHONPATH")] if p])
    env["GANSTUDIO_PLUGINS_DIR"] = str(tmp / "no_user_plugins")
    env["GANSTUDIO_CACHE_DIR"] = str(tmp / "cache")
    env.pop("GANSTUDIO_BLOCK_PLUGINS", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=tmp, timeout=240)


@pytest.mark.parametrize("raw, module, entry_point, model_id, dist, cls", [
    ("my-gan", "ganstudio_my_gan", "my_gan", "my-gan", "ganstudio-my-gan", "MyGanModel"),
    ("Wave_GAN2", "ganstudio_wave_gan2", "wave_gan2", "wave-gan2", "ganstudio-wave-gan2",
     "WaveGan2Model"),
    ("ganstudio-foo", "ganstudio_foo", "foo", "foo", "ganstudio-foo", "FooModel"),
])
def test_names_derived_from_the_plugin_name(raw, module, entry_point, model_id, dist, cls):
    n = PluginNames(raw)
    assert (n.module, n.entry_point, n.model_id, n.distribution, n.cls) == (
        module, entry_point, model_id, dist, cls)


@pytest.mark.parametrize("raw", ["9lives", "my gan", "", "a/b", "class", "x" * 50])
def test_unusable_names_are_refused(raw):
    with pytest.raises(UserError, match="plugin name"):
        PluginNames(raw)


def test_cli_writes_the_package_and_refuses_to_overwrite(tmp_path, capsys):
    assert main(["plugin", "new", "my-gan", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    root = tmp_path / "my-gan"
    assert f"wrote the plugin package ganstudio-my-gan in {root}/" in out
    assert "ganstudio plugins --check my_gan" in out
    written = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert written == sorted(["README.md", "pyproject.toml", "ganstudio_my_gan/__init__.py",
                              "ganstudio_my_gan/model.py", "tests/test_conformance.py"])
    pyproject = (root / "pyproject.toml").read_text()
    assert '[project.entry-points."ganstudio.plugins"]\nmy_gan = "ganstudio_my_gan"' in pyproject
    assert 'name = "ganstudio-my-gan"' in pyproject
    for path in root.rglob("*.py"):
        source = path.read_text()
        ast.parse(source)  # valid Python
        assert "{{" not in source, path
    init = (root / "ganstudio_my_gan" / "__init__.py").read_text()
    assert "GANSTUDIO_PLUGIN_API = 1" in init and 'id="my-gan"' in init

    before = (root / "ganstudio_my_gan" / "model.py").read_text()
    assert main(["plugin", "new", "my-gan", "--dir", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (root / "ganstudio_my_gan" / "model.py").read_text() == before

    assert main(["plugin", "new", "bad name", "--dir", str(tmp_path)]) == 2
    assert "must start with a letter" in capsys.readouterr().err
    assert main(["plugin", "new", "x", "--dir", str(tmp_path / "missing")]) == 2
    assert "folder not found" in capsys.readouterr().err
    assert main(["plugin"]) == 2  # no action: help on stderr


def test_new_writes_into_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["plugin", "new", "here"]) == 0
    assert (tmp_path / "here" / "ganstudio_here" / "model.py").is_file()


def test_skeleton_pip_installs_and_passes_the_kit_unchanged(tmp_path):
    root = write_skeleton("my-gan", tmp_path)
    target = pip_install_target(root, tmp_path / "install")
    assert (target / "ganstudio_my_gan-0.1.0.dist-info" / "entry_points.txt").is_file()
    # `ganstudio plugins --check` and then the skeleton's own tests through pytest, whose
    # PluginConformance class comes from the kit's pytest11 entry point
    code = ("import sys, pytest; from ganstudio.cli import main\n"
            "rc = main(['plugins', '--check', 'my_gan'])\n"
            "print('=====', flush=True)\n"
            f"rc = rc or pytest.main(['-q', '-p', 'no:cacheprovider', {str(root / 'tests')!r}])\n"
            "sys.exit(int(rc))\n")
    proc = run_python(code, target, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report, pytest_out = proc.stdout.split("=====\n")
    assert "PASS  load     entry point plugin 'my_gan' 0.1.0: plugin API 1, 1 model" in report
    # schema..bf16, plus the explorer's latent check (the skeleton declares a latent space)
    assert "PASS  declared" in report and "PASS  latent" in report
    # the skeleton declares ddp: it is also trained on two gloo processes
    assert "PASS  ddp      two gloo processes trained a few steps" in report, report
    assert "passed: 11 passed, 0 passed with notes, 0 skipped, 0 failed" in report
    assert "2 passed" in pytest_out  # test_plugin_loads + test_model_conforms[my-gan]


def test_plugin_check_is_the_same_as_plugins_check(tiny_plugin_file, capsys):
    assert main(["plugin", "check", "tinyplugin"]) == 0
    via_plugin = capsys.readouterr().out
    assert main(["plugins", "--check", "tinygan"]) == 0  # a model id works too
    via_plugins = capsys.readouterr().out
    assert "PASS  load     folder plugin 'tinyplugin' 0.0.1: plugin API 1, 1 model" in via_plugin
    body = lambda out: out.splitlines()[2:]  # noqa: E731 - the same model checks and verdict
    assert body(via_plugin) == body(via_plugins)
    assert via_plugin.strip().endswith("passed: 9 passed, 0 passed with notes, 0 skipped, "
                                       "0 failed")
