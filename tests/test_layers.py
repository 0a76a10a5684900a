"""Layer rules: ``ganstudio.core`` (and the plugin system) work with Qt absent, and no
module of ``ganstudio`` imports a built-in plugin package directly."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import ganstudio

PACKAGE = Path(ganstudio.__file__).resolve().parent
REPO = PACKAGE.parent
QT_MODULES = ("PySide6", "shiboken6", "PyQt5", "PyQt6", "PySide2", "pyqtgraph", "superqt",
              "qtpy")


def builtin_plugin_packages() -> set[str]:
    """Names of the built-in plugin packages (the ``plugins/ganstudio_*`` folders)."""
    names = {p.name for p in (REPO / "plugins").iterdir()
             if p.is_dir() and p.name.startswith("ganstudio_") and (p / "__init__.py").exists()}
    assert "ganstudio_dcgan" in names
    return names


def python_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module an ``import`` statement or ``import_module("...")`` call names."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__"):
                found.append((node.lineno, node.args[0].value))
    return found


def test_no_ganstudio_module_imports_a_builtin_plugin():
    plugins = builtin_plugin_packages()
    offenders = [f"{path.relative_to(REPO)}:{line} imports {mod}"
                 for path in python_files(PACKAGE)
                 for line, mod in imported_modules(path)
                 if mod.split(".")[0] in plugins]
    assert offenders == [], "ganstudio must reach built-in plugins only through the plugin " \
                            "manager:\n" + "\n".join(offenders)


def test_core_sources_never_import_qt_or_the_gui():
    core = PACKAGE / "core"
    offenders = [f"{path.relative_to(REPO)}:{line} imports {mod}"
                 for path in python_files(core) + [PACKAGE / "hookspecs.py",
                                                    PACKAGE / "plugins.py"]
                 for line, mod in imported_modules(path)
                 if mod.split(".")[0] in QT_MODULES or mod.startswith("ganstudio.gui")]
    assert offenders == [], "\n".join(offenders)


def test_the_scanner_sees_the_imports_it_must_refuse(tmp_path):
    """Guard against a scanner that finds nothing: it must catch every spelling."""
    probe = tmp_path / "probe.py"
    probe.write_text(textwrap.dedent('''
        import ganstudio_dcgan
        from ganstudio_dcgan.model import DCGAN
        def later():
            import importlib
            importlib.import_module("ganstudio_dcgan.model")
            from PySide6 import QtCore
    '''))
    mods = [m for _, m in imported_modules(probe)]
    assert mods.count("ganstudio_dcgan") == 1 and "ganstudio_dcgan.model" in mods
    assert mods.count("ganstudio_dcgan.model") == 2 and "PySide6" in mods


# Runs in a fresh interpreter: a meta-path finder refuses every Qt binding, then the
# Qt-free layers are imported, used a little, and the loaded modules are reported.
NO_QT_SCRIPT = textwrap.dedent('''
    import importlib, json, pkgutil, sys

    BLOCKED = {blocked!r}

    class RefuseQt:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"Qt is blocked in this test: {{name}}")
            return None

    sys.meta_path.insert(0, RefuseQt())

    import ganstudio.core
    core_modules = sorted(m.name for m in pkgutil.walk_packages(ganstudio.core.__path__,
                                                                "ganstudio.core."))
    for name in core_modules + ["ganstudio.hookspecs", "ganstudio.plugins", "ganstudio.cli"]:
        importlib.import_module(name)

    import torch
    from ganstudio.core.images import make_grid
    from ganstudio.plugins import PluginManager
    grid = make_grid(torch.zeros(4, 3, 8, 8))
    pm = PluginManager()
    qt_errors = {{n: p.error for n, p in pm.plugins.items() if "Qt is blocked" in p.error}}
    try:
        import PySide6  # noqa: F401
        refused = False
    except ImportError:
        refused = True
    print(json.dumps({{
        "core_modules": core_modules,
        "qt_loaded": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED),
        "grid": list(grid.shape),
        "dcgan": pm.plugins["dcgan"].status,
        "qt_errors": qt_errors,
        "refused": refused,
    }}))
''')


def test_core_imports_and_works_with_qt_blocked():
    script = NO_QT_SCRIPT.format(blocked=set(QT_MODULES))
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=REPO)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["refused"] is True  # the blocker really blocks
    assert report["qt_loaded"] == []
    assert {"ganstudio.core.engine", "ganstudio.core.data", "ganstudio.core.runs",
            "ganstudio.core.checkpoints"} <= set(report["core_modules"])
    assert report["grid"] == [22, 22, 3]
    # built-in plugins load without Qt too (a plugin's GUI panel must be optional)
    assert report["dcgan"] == "ok"
    assert report["qt_errors"] == {}


# -- model ids: every model enters through the plugin door ----------------------------------------
def builtin_model_ids() -> set[str]:
    """The ids of the models the built-in plugins (and the example plugin) register."""
    from ganstudio.plugins import PluginManager
    pm = PluginManager(load_folder=False)
    ids = {m.id for info in pm.plugins.values()
           if info.source == "built-in" or info.name == "mlp_gan" for m in info.models}
    assert {"dcgan", "progan"} <= ids
    return ids


def model_id_literals(path: Path, ids: set[str]) -> list[tuple[int, str]]:
    """String constants in code that are exactly a model id (docstrings aside)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) \
                and node.body and isinstance(node.body[0], ast.Expr) \
                and isinstance(node.body[0].value, ast.Constant):
            docstrings.add(id(node.body[0].value))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings and node.value.strip().lower() in ids]


#: Files that still name a built-in model, each with the reason; the test fails when an
#: entry no longer does (so the list only shrinks). Move the knowledge to a plugin or a
#: declared capability, then delete the entry.
NAMES_A_MODEL = {
    "ganstudio/gui/style_panel.py": "the style tab, moving into the style plugin's package",
    "ganstudio/cli/style.py": "the stylize commands, to reach the style plugin by kind",
    "ganstudio/bench/runner.py": "the benchmark compares the classic PyTorch DCGAN example "
                                 "with the engine on the same DCGAN, by design",
    "ganstudio/bench/profile_step.py": "profiles that same DCGAN step",
    "ganstudio/bench/style.py": "prefers the Gatys job among image-to-image models",
    "ganstudio/gui/smoke.py": "a manual GUI smoke script's default --model",
}


def test_no_builtin_model_id_is_written_in_ganstudio():
    ids = builtin_model_ids()
    found: dict[str, list[str]] = {}
    for path in python_files(PACKAGE):
        hits = model_id_literals(path, ids)
        if hits:
            found[str(path.relative_to(REPO))] = [f"line {n}: {v!r}" for n, v in hits]
    new = {p: h for p, h in found.items() if p not in NAMES_A_MODEL}
    assert new == {}, ("ganstudio/ names built-in models (reach them through the plugin "
                       f"manager and declared capabilities instead): {new}")
    stale = sorted(set(NAMES_A_MODEL) - set(found))
    assert stale == [], f"no longer names a model; remove from NAMES_A_MODEL: {stale}"


def test_the_model_id_scanner_finds_literals_but_not_docstrings(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text('"""Uses dcgan."""\ndef f():\n    """dcgan"""\n    return get("dcgan")\n')
    assert model_id_literals(probe, {"dcgan"}) == [(4, "dcgan")]
