"""The studio-panel hook through the plugin manager, without Qt: specs are
collected and sorted, a broken plugin loses only its tab."""
from __future__ import annotations

import types

from ganstudio.panels import PanelSpec
from ganstudio.plugins import PluginManager, hookimpl


def _plugin(name: str, result):
    mod = types.ModuleType(name)
    mod.GANSTUDIO_PLUGIN_API = 1

    @hookimpl
    def ganstudio_studio_panels():
        if isinstance(result, Exception):
            raise result
        return result

    mod.ganstudio_studio_panels = ganstudio_studio_panels
    return mod


def test_panels_are_collected_sorted_and_broken_ones_reported(monkeypatch, tmp_path):
    monkeypatch.setenv("GANSTUDIO_PLUGINS_DIR", str(tmp_path))
    pm = PluginManager(plugins_dir=tmp_path)
    before, _ = pm.panels()
    late = PanelSpec(id="late", title="Late", factory=lambda studio: None, order=90)
    early = PanelSpec(id="early", title="Early", factory=lambda studio: None, order=5)
    assert pm.register(_plugin("p_ok", [late, early]), "p_ok").status == "ok"
    assert pm.register(_plugin("p_raise", RuntimeError("no panel today")), "p_raise").status == "ok"
    assert pm.register(_plugin("p_wrong", ["not a spec"]), "p_wrong").status == "ok"
    panels, problems = pm.panels()
    ours = [p.id for p in panels if p.id in ("early", "late")]
    assert ours == ["early", "late"]
    assert len(panels) == len(before) + 2
    reasons = dict(problems)
    assert "no panel today" in reasons["p_raise"]
    assert "PanelSpec" in reasons["p_wrong"]
    assert "p_ok" not in reasons
