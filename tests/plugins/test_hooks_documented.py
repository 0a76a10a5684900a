"""Every hook is documented and tested (as datasette's test suite insists).

A hookspec in ganstudio/hookspecs.py fails this module when it has no
docstring (saying when and in which thread it is called), no section with its
exact signature in plugins/PLUGINS.md, or no test file that references it.
"""
from __future__ import annotations

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
    assert hook_names() == ["ganstudio_metrics", "ganstudio_register_models",
                            "ganstudio_run_finished", "ganstudio_studio_panels"]


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


@pytest.mark.parametrize("name", hook_names())
def test_hook_is_referenced_by_a_test(name):
    tests = [p for p in (ROOT / "tests").rglob("test_*.py") if p.resolve() != THIS]
    users = [p.name for p in tests if name in p.read_text(encoding="utf-8")]
    assert users, f"no test references the hook {name}"
