"""Every hook is documented and tested (as datasette's test suite insists).

A hookspec in ganstudio/hookspecs.py fails this module when it has no
docstring (saying when and in which thread it is called), no section with its
exact signature in plugins/PLUGINS.md, or no test that calls it (directly or
through the plugin manager method that calls it).
"""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from ganstudio import hookspecs

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "plugins" / "PLUGINS.md").read_text(encoding="utf-8")
THIS = Path(__file__).resolve()


def hook_names() -> list[str]:
    marker = f"{hookspecs.PROJECT}_spec"
    return sorted(name for name, fn in vars(hookspecs).items()
                  if callable(fn) and hasattr(fn, marker))


def test_the_hook_list_is_what_plugins_can_use():
    assert hook_names() == ["ganstudio_benchmark_references", "ganstudio_metrics",
                            "ganstudio_register_models", "ganstudio_run_finished",
                            "ganstudio_studio_panels"]


@pytest.mark.parametrize("name", hook_names())
def test_hook_has_a_docstring_saying_when_and_in_which_thread(name):
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    assert len(doc) > 80, f"{name} needs a docstring"
    assert "Called" in doc and "thread" in doc, f"{name}: say when and in which thread"
    assert "Example::" in doc, f"{name}: show an example implementation"


@pytest.mark.parametrize("name", hook_names())
def test_hook_is_in_the_guide_with_its_exact_signature(name):
    sig = inspect.signature(getattr(hookspecs, name))

    def text(annotation) -> str:  # annotations are strings here (postponed evaluation)
        return str(annotation).strip("'\"")

    params = ", ".join(f"{p.name}: {text(p.annotation)}" for p in sig.parameters.values())
    heading = f"### `{name}({params}) -> {text(sig.return_annotation)}`"
    assert heading in GUIDE, f"PLUGINS.md lacks a section starting with: {heading}"
    section = GUIDE.split(heading, 1)[1].split("\n### ", 1)[0]
    assert "*When:*" in section and "*Thread:*" in section
    assert f"def {name}(" in section, f"the guide's section on {name} needs an example"


def _callers(name: str) -> set[str]:
    """Names whose call runs the hook ``name``: the hook itself (``pm.hook.NAME(...)``,
    ``module.NAME()``) and every PluginManager method whose body reaches it, directly
    or through another such method (``PluginManager(...)`` itself when ``__init__`` does)."""
    tree = ast.parse((ROOT / "ganstudio" / "plugins.py").read_text(encoding="utf-8"))
    manager = next(n for n in tree.body if isinstance(n, ast.ClassDef)
                   and n.name == "PluginManager")
    methods = {f.name: f for f in manager.body if isinstance(f, ast.FunctionDef)}

    def mentions(node: ast.AST, words: set[str]) -> bool:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Attribute) and sub.attr in words:
                return True
            if isinstance(sub, ast.Constant) and sub.value in words:
                return True
        return False

    reach = {name}
    grown = True
    while grown:
        grown = False
        for mname, fn in methods.items():
            if mname not in reach and mentions(fn, reach):
                reach.add(mname)
                grown = True
    if "__init__" in reach:
        reach.add("PluginManager")
    return reach


def _calls(path: Path) -> set[str]:
    """The names called in a test file (``f(...)``, ``x.f(...)``), comments and strings aside."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            f = node.func
            names.add(f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", ""))
    return names


@pytest.mark.parametrize("name", hook_names())
def test_hook_is_called_by_a_test(name):
    """A test must call the hook - directly or through the plugin manager - not merely
    mention its name (in a comment, a string, an attribute look-up)."""
    callers = _callers(name)
    tests = [p for p in (ROOT / "tests").rglob("test_*.py") if p.resolve() != THIS]
    users = [p.name for p in tests if name in p.read_text(encoding="utf-8")
             and _calls(p) & callers]
    assert users, f"no test calls the hook {name} (or one of {sorted(callers - {name})})"


def test_a_mention_is_not_a_call(tmp_path):
    probe = tmp_path / "test_probe.py"
    probe.write_text("# ganstudio_metrics\nx = 'ganstudio_metrics'\ny = pm.hook.ganstudio_metrics\n")
    assert "ganstudio_metrics" not in _calls(probe)
    probe.write_text("pm.pm.hook.ganstudio_metrics(run_dir='r', step=1, time=0, values={})\n")
    assert "ganstudio_metrics" in _calls(probe)
    assert {"metrics_listener", "ganstudio_metrics"} <= _callers("ganstudio_metrics")
