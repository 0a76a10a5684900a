"""The plugin manager: entry points, the user plugin folder, blocking, broken plugins."""
from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest

import ganstudio
from ganstudio.core.errors import UserError
from ganstudio.plugins import (BLOCK_ENV, PLUGINS_DIR_ENV, PluginManager, default_plugins_dir,
                               get_plugin_manager, validate_spec)

# A minimal valid folder plugin; {model_id}, {api} and {extra} are filled in per test.
PLUGIN_TEMPLATE = textwrap.dedent('''
    import ganstudio
    from ganstudio.core.config import common_gan_fields
    from ganstudio.core.model import ModelSpec

    __version__ = "2.5"
    GANSTUDIO_PLUGIN_API = {api}

    @ganstudio.hookimpl
    def ganstudio_register_models():
        return [ModelSpec(id="{model_id}", name="{model_id} model", kind="gan",
                          schema=common_gan_fields(), factory=lambda c, s, d: None)]
    {extra}
''')


def plugin_source(model_id: str = "foldermodel", api: int = 1, extra: str = "") -> str:
    return PLUGIN_TEMPLATE.format(model_id=model_id, api=api, extra=extra)


def write_plugin(folder: Path, name: str, source: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    return path


def make_distribution(root: Path, dist: str, version: str, entry_points: dict[str, str],
                      modules: dict[str, str]) -> None:
    """An installed third-party distribution on ``root`` (dist-info + modules)."""
    info = root / f"{dist}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[ganstudio.plugins]\n{lines}")
    for mod, src in modules.items():
        (root / f"{mod}.py").write_text(src)


# -- entry points ----------------------------------------------------------------------------
def test_builtin_dcgan_is_loaded_through_the_entry_point_group():
    pm = PluginManager(load_folder=False)
    info = pm.plugins["dcgan"]
    assert info.status == "ok", info.error
    assert info.source == "built-in"
    assert info.location == "ganstudio_dcgan"
    assert [m.id for m in info.models] == ["dcgan"]
    spec = pm.get_model("dcgan")
    assert spec.plugin == "dcgan" and spec.kind == "gan"
    assert pm.plugin_version(spec) == info.version != ""


def test_third_party_entry_points_load_and_a_broken_one_is_recorded(tmp_path, monkeypatch):
    make_distribution(
        tmp_path, "gs_thirdparty", "3.1",
        {"thirdparty": "gs_thirdparty_ok", "brokenimport": "gs_thirdparty_broken"},
        {"gs_thirdparty_ok": plugin_source("thirdmodel"),
         "gs_thirdparty_broken": "raise RuntimeError('plugin exploded on import')\n"})
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    for mod in ("gs_thirdparty_ok", "gs_thirdparty_broken"):
        monkeypatch.delitem(sys.modules, mod, raising=False)

    pm = PluginManager(load_folder=False)
    ok = pm.plugins["thirdparty"]
    assert (ok.status, ok.source, ok.version) == ("ok", "entry point", "3.1")
    assert pm.get_model("thirdmodel").plugin == "thirdparty"
    bad = pm.plugins["brokenimport"]
    assert bad.status == "error" and bad.source == "entry point"
    assert "failed to import" in bad.error and "plugin exploded on import" in bad.error
    assert bad.models == []
    # the built-ins still load next to the broken plugin
    assert pm.plugins["dcgan"].status == "ok"
    assert {"dcgan", "thirdmodel"} <= {m.id for m in pm.models()}


# -- the user plugin folder ------------------------------------------------------------------
def test_default_plugins_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(PLUGINS_DIR_ENV, str(tmp_path / "mine"))
    assert default_plugins_dir() == tmp_path / "mine"
    monkeypatch.delenv(PLUGINS_DIR_ENV)
    d = default_plugins_dir()
    assert d.name == "plugins" and "ganstudio" in str(d)


def test_folder_plugin_from_the_env_var_folder(plugins_dir):
    write_plugin(plugins_dir, "myplugin", plugin_source("envmodel"))
    write_plugin(plugins_dir, "_private_helper", "raise SystemExit('must not be imported')")
    (plugins_dir / "notes.txt").write_text("not a plugin")
    pm = PluginManager(load_entry_points=False)
    assert pm.plugins_dir == plugins_dir
    info = pm.plugins["myplugin"]
    assert (info.status, info.source, info.version) == ("ok", "folder", "2.5")
    assert info.location == str(plugins_dir / "myplugin.py")
    assert set(pm.plugins) == {"myplugin"}
    assert pm.get_model("envmodel").plugin == "myplugin"


def test_plugins_dir_argument_overrides_the_env_var(tmp_path, plugins_dir):
    write_plugin(plugins_dir, "fromenv", plugin_source("envmodel"))
    other = tmp_path / "other"
    write_plugin(other, "fromarg", plugin_source("argmodel"))
    pm = PluginManager(plugins_dir=other, load_entry_points=False)
    assert set(pm.plugins) == {"fromarg"}
    assert pm.plugins_dir == other
    # the process-wide manager takes the same override (the CLI's --plugins-dir)
    pm2 = get_plugin_manager(other)
    assert "fromarg" in pm2.plugins and "fromenv" not in pm2.plugins
    assert get_plugin_manager() is pm2


def test_missing_plugins_folder_is_not_an_error(tmp_path):
    pm = PluginManager(plugins_dir=tmp_path / "does-not-exist", load_entry_points=False)
    assert pm.plugins == {}
    assert pm.models() == []


# -- blocking --------------------------------------------------------------------------------
def test_block_env_var_blocks_entry_point_and_folder_plugins(plugins_dir, monkeypatch):
    write_plugin(plugins_dir, "blockme", "raise RuntimeError('a blocked plugin was imported')")
    write_plugin(plugins_dir, "keepme", plugin_source("keptmodel"))
    monkeypatch.setenv(BLOCK_ENV, " dcgan , blockme")
    sys.modules.pop("ganstudio_userplugin_blockme", None)
    pm = PluginManager()
    for name in ("dcgan", "blockme"):
        assert pm.plugins[name].status == "blocked"
        assert BLOCK_ENV in pm.plugins[name].error
        assert pm.plugins[name].models == []
    assert "ganstudio_userplugin_blockme" not in sys.modules  # never imported
    ids = {m.id for m in pm.models()}
    assert "dcgan" not in ids and "keptmodel" in ids
    with pytest.raises(UserError, match="unknown model 'dcgan'"):
        pm.get_model("dcgan")


def test_block_env_var_applies_to_registered_objects(tiny_plugin_module, monkeypatch):
    monkeypatch.setenv(BLOCK_ENV, "tinyplugin")
    pm = PluginManager(load_entry_points=False, load_folder=False,
                       extra=[("tinyplugin", tiny_plugin_module)])
    assert pm.plugins["tinyplugin"].status == "blocked"
    assert pm.models() == []


# -- broken plugins --------------------------------------------------------------------------
BROKEN = {
    "syntaxerr": ("def oops(:\n", "failed to import: SyntaxError"),
    "raises": ("import this_module_does_not_exist_anywhere\n",
               "failed to import: ModuleNotFoundError"),
    "exits": ("raise SystemExit(3)\n", "failed to import: SystemExit"),
    "noapi": (plugin_source("noapimodel").replace("GANSTUDIO_PLUGIN_API = 1", ""),
              "does not declare GANSTUDIO_PLUGIN_API"),
    "newapi": (plugin_source("newapimodel", api=99),
               "written for plugin API 99, but this studio speaks 1"),
    "badkind": (plugin_source("kindmodel").replace('kind="gan"', 'kind="video"'),
                "kind must be one of gan, image2image, feedforward"),
    "badid": (plugin_source("bad id!"), "model id 'bad id!' must be"),
    "noschema": (plugin_source("noschemamodel").replace("schema=common_gan_fields()",
                                                        "schema=[]"),
                 "a GAN schema needs the settings batch_size, channels, resolution"),
    "notalist": (plugin_source().replace("return [ModelSpec(", "return (ModelSpec(")
                 .replace("lambda c, s, d: None)]", "lambda c, s, d: None)).id"),
                 "must return a list, got str"),
    "notaspec": (plugin_source().replace("return [ModelSpec(", "return [dict(")
                 .replace("factory=lambda", "f=lambda"), "must return ModelSpec objects"),
    "hookraises": (plugin_source().replace(
        "def ganstudio_register_models():",
        "def ganstudio_register_models():\n    raise ValueError('no models today')"),
                   "ganstudio_register_models failed: ValueError: no models today"),
    "badhookargs": (plugin_source(extra=(
        "\n@ganstudio.hookimpl\ndef ganstudio_metrics(run_dir, nonsense):\n    pass\n")),
                    "invalid hooks"),
    "dupfield": (plugin_source().replace("schema=common_gan_fields()",
                                         "schema=common_gan_fields() * 2"),
                 "setting 'resolution' is declared twice"),
    "clash": (plugin_source("tinygan"), "already provided by another plugin: tinygan"),
}


def test_broken_plugins_are_recorded_and_the_others_load(plugins_dir, tiny_plugin_module):
    for name, (source, _) in BROKEN.items():
        write_plugin(plugins_dir, name, source)
    write_plugin(plugins_dir, "zgood", plugin_source("goodmodel"))
    # extras are registered after the folder; the clash case needs tinygan first
    pm = PluginManager(load_entry_points=False, load_folder=False,
                       extra=[("tinyplugin", tiny_plugin_module)])
    pm._load_folder(plugins_dir)
    for name, (_, expected) in BROKEN.items():
        info = pm.plugins[name]
        assert info.status == "error", name
        assert expected in info.error, (name, info.error)
        assert info.models == []
        assert info.source == "folder"
    assert pm.plugins["zgood"].status == "ok"
    assert {m.id for m in pm.models()} == {"tinygan", "goodmodel"}
    # a rejected plugin's hooks are not left registered
    names = {pm.pm.get_name(p) for p in pm.pm.get_plugins()}
    assert names == {"tinyplugin", "zgood"}
    for hook in ("ganstudio_register_models", "ganstudio_metrics"):
        impls = getattr(pm.pm.hook, hook).get_hookimpls()
        assert {i.plugin_name for i in impls} <= {"tinyplugin", "zgood"}


def test_folder_plugin_with_the_name_of_a_loaded_plugin_is_refused(plugins_dir):
    write_plugin(plugins_dir, "dcgan", plugin_source("otherdcgan"))
    pm = PluginManager()
    assert pm.plugins["dcgan"].source == "built-in" and pm.plugins["dcgan"].status == "ok"
    dup = [i for k, i in pm.plugins.items() if k.startswith("dcgan (")]
    assert len(dup) == 1 and dup[0].status == "error"
    assert "already loaded" in dup[0].error
    assert "otherdcgan" not in {m.id for m in pm.models()}


def test_validate_spec_accepts_a_good_spec(tiny_spec):
    assert validate_spec(tiny_spec) is tiny_spec
    with pytest.raises(TypeError):
        validate_spec(object())


# -- queries and hooks -----------------------------------------------------------------------
def test_get_model_exact_prefix_and_unknown(plugin_manager, plugins_dir):
    assert plugin_manager.get_model("tinygan").id == "tinygan"
    assert plugin_manager.get_model("TINY").id == "tinygan"  # unique substring
    with pytest.raises(UserError, match=r"unknown model 'nope' \(installed: tinygan\)"):
        plugin_manager.get_model("nope")
    write_plugin(plugins_dir, "other", plugin_source("tinyother"))
    pm = PluginManager(load_entry_points=False, extra=[("tinyplugin", plugin_manager.plugins[
        "tinyplugin"].module)])
    with pytest.raises(UserError, match="'tiny' is ambiguous: it matches tinygan, tinyother"):
        pm.get_model("tiny")
    assert pm.get_model("tinyoth").id == "tinyother"
    write_plugin(plugins_dir, "broken", "raise ImportError('x')\n")
    pm = PluginManager(load_entry_points=False)
    with pytest.raises(UserError, match="1 plugin\\(s\\) failed to load"):
        pm.get_model("dcgan")


def test_plugin_api_version_constant_is_what_plugins_declare():
    import ganstudio_dcgan
    assert ganstudio.PLUGIN_API_VERSION == 1
    assert ganstudio_dcgan.GANSTUDIO_PLUGIN_API == ganstudio.PLUGIN_API_VERSION


def test_metrics_listener_forwards_to_plugin_hooks(plugins_dir, tmp_path):
    from ganstudio.core import events as ev
    write_plugin(plugins_dir, "recorder", plugin_source("recmodel", extra=textwrap.dedent('''
        CALLS = []

        @ganstudio.hookimpl
        def ganstudio_metrics(run_dir, step, time, values):
            CALLS.append(("metrics", run_dir, step, time, dict(values)))

        @ganstudio.hookimpl
        def ganstudio_run_finished(run_dir, step, reason):
            CALLS.append(("finished", run_dir, step, reason))
    ''')))
    pm = PluginManager(load_entry_points=False)
    calls = pm.plugins["recorder"].module.CALLS
    listen = pm.metrics_listener(str(tmp_path))
    listen(ev.Metrics(5, 1.5, {"loss_d": 0.7}, 100.0, 10))
    listen(ev.Samples(5, None, None))  # ignored
    listen(ev.Finished(10, "completed", None))
    listen(ev.Failed(3, "boom"))
    assert calls == [("metrics", str(tmp_path), 5, 1.5, {"loss_d": 0.7}),
                     ("finished", str(tmp_path), 10, "completed"),
                     ("finished", str(tmp_path), 3, "failed")]


def test_hooks_work_without_the_decorator(plugins_dir, tmp_path):
    """Like pytest's own hooks, a function named after a hook is an implementation even
    when the author forgot ``@ganstudio.hookimpl``; other functions are left alone."""
    from ganstudio.core import events as ev
    source = plugin_source("plainmodel").replace("@ganstudio.hookimpl\n", "") + textwrap.dedent('''
        CALLS = []

        def ganstudio_metrics(run_dir, step, time, values):
            CALLS.append(step)

        def ganstudio_not_a_hook():
            raise AssertionError("not a hook")
    ''')
    assert "@ganstudio.hookimpl" not in source
    write_plugin(plugins_dir, "plain", source)
    pm = PluginManager(load_entry_points=False)
    assert pm.plugins["plain"].status == "ok", pm.plugins["plain"].error
    assert pm.get_model("plainmodel").plugin == "plain"
    pm.metrics_listener(str(tmp_path))(ev.Metrics(7, 0.5, {"loss_d": 1.0}, 10.0, 10))
    assert pm.plugins["plain"].module.CALLS == [7]
    impls = pm.pm.hook.ganstudio_register_models.get_hookimpls()
    assert [i.plugin_name for i in impls] == ["plain"]
