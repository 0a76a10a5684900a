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
NAMES_A_MODEL: dict[str, str] = {}


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


# -- the import graph of ganstudio/ ------------------------------------------------------------
def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the ganstudio modules it imports (anywhere in the file, lazy imports too;
    relative imports resolved; ``from pkg import name`` counts pkg.name when it is a module).
    A package's ``__init__`` that merely runs as the parent of an imported module is not an
    edge: what counts is the module each statement names."""
    files = python_files(root)
    known = {module_name(p): p for p in files}
    graph: dict[str, set[str]] = {}
    for path in files:
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                subs = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in known]
                targets = subs if len(subs) == len(node.names) else [mod] + subs
            elif isinstance(node, ast.Call) and node.args and \
                    isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                func = node.func
                fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if fname in ("import_module", "__import__"):
                    targets = [node.args[0].value]
            for t in targets:
                if t in known and t != name:
                    edges.add(t)
        graph[name] = edges
    return graph


def import_chain(graph: dict[str, set[str]], start: str, goal_prefix: str) -> list[str] | None:
    """The shortest chain of imports from ``start`` to a module under ``goal_prefix``."""
    from collections import deque
    seen, queue = {start: None}, deque([start])
    while queue:
        mod = queue.popleft()
        if mod != start and (mod == goal_prefix or mod.startswith(goal_prefix + ".")):
            chain = [mod]
            while seen[chain[-1]] is not None:
                chain.append(seen[chain[-1]])
            return chain[::-1]
        for nxt in sorted(graph.get(mod, ())):
            if nxt not in seen:
                seen[nxt] = mod
                queue.append(nxt)
    return None


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of modules (Tarjan), as a readable chain."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    cycles = []
    for group in groups:
        members = set(group)
        sub = {m: graph[m] & members for m in group}
        start = group[0]
        back = [m for m in group if start in sub[m]]
        # the shortest path from start to a module importing start closes the cycle
        chains = [import_chain(sub, start, m) for m in back]
        best = min((c for c in chains if c), key=len)
        cycles.append(best + [start])
    return cycles


def test_the_graph_scanner_resolves_relative_and_lazy_imports(tmp_path):
    pkg = tmp_path / "ganstudio"
    (pkg / "gui").mkdir(parents=True)
    for f in ("__init__.py", "cli.py", "gui/__init__.py", "gui/app.py", "gui/panel.py"):
        (pkg / f).write_text("")
    (pkg / "cli.py").write_text("def main():\n    from ganstudio.gui.app import run\n")
    (pkg / "gui" / "app.py").write_text("from .panel import Panel\n")
    (pkg / "gui" / "panel.py").write_text("def f():\n    from .. import cli\n")
    global REPO
    saved, REPO = REPO, tmp_path
    try:
        graph = import_graph(pkg)
    finally:
        REPO = saved
    assert graph["ganstudio.gui.panel"] == {"ganstudio.cli"}
    assert import_chain(graph, "ganstudio.gui.app", "ganstudio.cli") == \
        ["ganstudio.gui.app", "ganstudio.gui.panel", "ganstudio.cli"]
    assert import_cycles(graph) == [["ganstudio.cli", "ganstudio.gui.app",
                                     "ganstudio.gui.panel", "ganstudio.cli"]]


def test_the_gui_never_imports_the_command_line():
    graph = import_graph()
    offenders = []
    for mod in sorted(graph):
        if mod == "ganstudio.gui" or mod.startswith("ganstudio.gui."):
            chain = import_chain(graph, mod, "ganstudio.cli")
            if chain:
                offenders.append(" -> ".join(chain))
    assert offenders == [], "the studio must not import the command line:\n" + \
        "\n".join(offenders)


# Cycles known and not yet broken, each with its reason; a new cycle fails the test.
KNOWN_CYCLES: set[tuple[str, ...]] = set()


def test_no_import_cycle_inside_ganstudio():
    cycles = import_cycles(import_graph())
    new = [c for c in cycles if tuple(sorted(set(c))) not in KNOWN_CYCLES]
    assert new == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in new)
