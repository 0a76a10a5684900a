"""The plugin manager: every plugin, built-in or third-party, enters through here.

Sources, in load order:

1. entry points in the group ``ganstudio.plugins`` (the built-in plugins are
   registered there by GAN Studio's own package metadata, exactly like any
   third-party package);
2. single-file plugins (``*.py``) in the user plugin folder: the platform's
   user data folder + ``/plugins``, or ``$GANSTUDIO_PLUGINS_DIR``, or the
   ``--plugins-dir`` option.

``GANSTUDIO_BLOCK_PLUGINS=name1,name2`` blocks plugins by name. A plugin that
fails to import or to validate is recorded with its error; the rest go on.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

import pluggy

import ganstudio
from ganstudio import hookspecs
from ganstudio.core.config import Field
from ganstudio.core.errors import UserError
from ganstudio.core.model import FOLDER_KINDS, KINDS, ModelSpec
from ganstudio.panels import PanelSpec

ENTRY_POINT_GROUP = "ganstudio.plugins"
BLOCK_ENV = "GANSTUDIO_BLOCK_PLUGINS"
PLUGINS_DIR_ENV = "GANSTUDIO_PLUGINS_DIR"
hookimpl = hookspecs.hookimpl


@dataclass
class PluginInfo:
    name: str
    source: str                      # "built-in", "entry point", "folder", "registered"
    version: str = ""
    location: str = ""
    status: str = "ok"               # "ok", "error", "blocked"
    error: str = ""
    models: list[ModelSpec] = field(default_factory=list)
    module: Any = None


def default_plugins_dir() -> Path:
    env = os.environ.get(PLUGINS_DIR_ENV)
    if env:
        return Path(env).expanduser()
    try:
        import platformdirs
        base = Path(platformdirs.user_data_dir("ganstudio", appauthor=False))
    except ImportError:  # minimal installs (e.g. a bare GPU server)
        base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "ganstudio"
    return base / "plugins"


def blocked_names() -> set[str]:
    raw = os.environ.get(BLOCK_ENV, "")
    return {n.strip() for n in raw.split(",") if n.strip()}


def _short_error(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {exc}"


_GANSTUDIO_DIR = str(Path(__file__).resolve().parent) + os.sep


def _where(path: str, lineno: int | None) -> str:
    """'my_plugin.py, line 3'; a package's '__init__.py' keeps its folder name."""
    p = Path(path)
    name = f"{p.parent.name}/{p.name}" if p.name == "__init__.py" else p.name
    return f"{name}, line {lineno}"


def _plugin_location(exc: BaseException) -> str:
    """Where in the plugin's own code ``exc`` was raised: the innermost frame outside
    importlib, generated code and GAN Studio itself ('' if none)."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        fn = frame.filename
        if fn.startswith("<") or "importlib" in fn:
            continue
        try:
            if str(Path(fn).resolve()).startswith(_GANSTUDIO_DIR):
                continue
        except OSError:
            pass
        return _where(fn, frame.lineno)
    return ""


def _invalid_default(exc: BaseException) -> str:
    """For a Field whose own default fails validation: 'the default of setting ...'."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "__post_init__":
            fld = tb.tb_frame.f_locals.get("self")
            if isinstance(fld, Field):
                reason = str(exc).removeprefix(f"setting '{fld.name}': ")
                return (f"the default {fld.default!r} of setting '{fld.name}' is invalid: "
                        f"{reason}")
        tb = tb.tb_next
    return ""


def _plugin_error(exc: BaseException) -> str:
    """'ZeroDivisionError: division by zero (my_plugin.py, line 3)': the error and
    where in the plugin's own code it happened (not in importlib's or GAN Studio's frames)."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.__class__.__name__}: {exc.msg} ({_where(exc.filename, exc.lineno)})"
    text = _invalid_default(exc) or str(exc)
    where = _plugin_location(exc)
    return f"{exc.__class__.__name__}: {text}" + (f" ({where})" if where else "")


_import_error = _plugin_error


def _hook_problems(obj: Any) -> list[str]:
    """Hook implementations whose name is not a GAN Studio hook (a typo never runs)."""
    import difflib

    known = [n for n in dir(hookspecs) if n.startswith(f"{hookspecs.PROJECT}_")
             and hasattr(getattr(hookspecs, n), f"{hookspecs.PROJECT}_spec")]
    problems = []
    for attr in dir(obj):
        try:
            value = getattr(obj, attr)
        except Exception:  # noqa: BLE001 - a property of an odd plugin object
            continue
        if not callable(value) or getattr(value, f"{hookspecs.PROJECT}_impl", None) is None:
            continue
        if attr not in known:
            close = difflib.get_close_matches(attr, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"'{attr}' is not a GAN Studio hook{hint}; "
                            f"the hooks are {', '.join(known)}")
    return problems


def _hook_error(exc: BaseException) -> str:
    """pluggy's multi-line validation message as one readable line."""
    import inspect
    import re

    text = str(exc)
    m = re.search(r"hook '(\w+)'.*?definition: (\S.*?)\n.*?Argument\(s\) \{(.*?)\}", text,
                  re.S)
    if m:
        hook, definition, args = m.group(1), m.group(2).strip(), m.group(3)
        spec = getattr(hookspecs, hook, None)
        offered = list(inspect.signature(spec).parameters) if spec else []
        names = ", ".join(a.strip() for a in args.split(","))
        takes = (f"it offers {', '.join(offered)} (take any of them, by exactly these names)"
                 if offered else "it takes no arguments")
        return f"{definition}: argument(s) {names} are not provided by the hook {hook}; {takes}"
    return " ".join(text.split())


def validate_spec(spec: Any) -> ModelSpec:
    """Check what a plugin returned; raise TypeError/ValueError with a clear message."""
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"ganstudio_register_models must return ModelSpec objects, "
                        f"got {type(spec).__name__} (build each with "
                        f"ganstudio.core.model.ModelSpec)")
    if not spec.id or not isinstance(spec.id, str) or not spec.id.replace("-", "").replace(
            "_", "").replace(".", "").isalnum():
        raise ValueError(f"model id {spec.id!r} must be a non-empty name of letters, digits, "
                         "'-', '_' or '.'")
    if spec.kind not in KINDS:
        raise ValueError(f"model '{spec.id}': kind must be one of {', '.join(KINDS)}")
    if not callable(spec.factory):
        raise TypeError(f"model '{spec.id}': factory is not callable")
    names = set()
    for f in spec.schema:
        if not isinstance(f, Field):
            raise TypeError(f"model '{spec.id}': schema entries must be Field objects")
        if f.name in names:
            raise ValueError(f"model '{spec.id}': setting '{f.name}' is declared twice")
        names.add(f.name)
    if spec.kind in FOLDER_KINDS:
        missing = {"resolution", "channels", "batch_size"} - names
        if missing:
            raise ValueError(f"model '{spec.id}': a GAN schema needs the settings "
                             f"{', '.join(sorted(missing))} (see common_gan_fields)")
    return spec


class _HookManager(pluggy.PluginManager):
    """pluggy's manager, also taking an undecorated function named after a hook spec
    (``ganstudio_metrics`` without ``@ganstudio.hookimpl``) as its implementation,
    as pytest does for its own hooks: a forgotten decorator must not silently mute a hook."""

    def parse_hookimpl_opts(self, plugin: Any, name: str):
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith(f"{hookspecs.PROJECT}_"):
            caller = getattr(self.hook, name, None)
            if getattr(caller, "spec", None) is not None \
                    and inspect.isroutine(getattr(plugin, name, None)):
                opts = {}  # pluggy fills in the default options
        return opts


class PluginManager:
    """Loads plugins and answers: which models exist, which plugins failed."""

    def __init__(self, *, plugins_dir: str | os.PathLike | None = None,
                 load_entry_points: bool = True, load_folder: bool = True,
                 extra: Iterable[tuple[str, Any]] = ()):
        self.pm = _HookManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.plugins_dir = Path(plugins_dir).expanduser() if plugins_dir else default_plugins_dir()
        self._blocked = blocked_names()
        if load_entry_points:
            self._load_entry_points()
        if load_folder:
            self._load_folder(self.plugins_dir)
        for name, obj in extra:
            self.register(obj, name, source="registered")

    # -- loading -----------------------------------------------------------------------------
    def _load_entry_points(self) -> None:
        try:
            eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
        except Exception as e:  # pragma: no cover - broken metadata
            self.plugins["<entry points>"] = PluginInfo("<entry points>", "entry point",
                                                        status="error", error=_short_error(e))
            return
        seen = set()
        for ep in sorted(eps, key=lambda e: e.name):
            if ep.name in seen:
                continue
            seen.add(ep.name)
            dist = getattr(ep, "dist", None)
            version = dist.version if dist is not None else ""
            builtin = dist is not None and dist.metadata["Name"].lower() == "ganstudio"
            source = "built-in" if builtin else "entry point"
            if ep.name in self._blocked:
                self.plugins[ep.name] = PluginInfo(ep.name, source, version, ep.value,
                                                   status="blocked", error=f"blocked by {BLOCK_ENV}")
                continue
            try:
                obj = ep.load()
            except BaseException as e:  # noqa: BLE001 - a plugin may raise anything on import
                if isinstance(e, KeyboardInterrupt):
                    raise
                self.plugins[ep.name] = PluginInfo(ep.name, source, version, ep.value,
                                                   status="error",
                                                   error=f"failed to import: {_import_error(e)}")
                continue
            self.register(obj, ep.name, source=source, version=version, location=ep.value)

    def _load_folder(self, folder: Path) -> None:
        if not folder.is_dir():
            return
        for path in sorted(folder.glob("*.py")):
            name = path.stem
            if name.startswith("_"):
                continue
            if name in self._blocked:
                self.plugins[name] = PluginInfo(name, "folder", location=str(path),
                                                status="blocked", error=f"blocked by {BLOCK_ENV}")
                continue
            if name in self.plugins:
                self.plugins[f"{name} ({path})"] = PluginInfo(
                    name, "folder", location=str(path), status="error",
                    error=f"a plugin named '{name}' is already loaded")
                continue
            modname = f"ganstudio_userplugin_{name}"
            try:
                spec = importlib.util.spec_from_file_location(modname, path)
                if spec is None or spec.loader is None:
                    raise ImportError("not a Python module")
                module = importlib.util.module_from_spec(spec)
                sys.modules[modname] = module
                spec.loader.exec_module(module)
            except BaseException as e:  # noqa: BLE001
                if isinstance(e, KeyboardInterrupt):
                    raise
                sys.modules.pop(modname, None)
                self.plugins[name] = PluginInfo(name, "folder", location=str(path), status="error",
                                                error=f"failed to import: {_import_error(e)}")
                continue
            self.register(module, name, source="folder", location=str(path),
                          version=str(getattr(module, "__version__", "")))

    def register(self, obj: Any, name: str, *, source: str = "registered", version: str = "",
                 location: str = "") -> PluginInfo:
        """Register a module or object as a plugin, validate it, and record the outcome."""
        info = PluginInfo(name, source, version or str(getattr(obj, "__version__", "")),
                          location, module=obj)
        self.plugins[name] = info
        if name in self._blocked:
            info.status, info.error = "blocked", f"blocked by {BLOCK_ENV}"
            return info
        api = getattr(obj, "GANSTUDIO_PLUGIN_API", None)
        if api is None:
            info.status = "error"
            info.error = (f"does not declare GANSTUDIO_PLUGIN_API (this studio speaks "
                          f"version {ganstudio.PLUGIN_API_VERSION})")
            return info
        if type(api) is not int:  # noqa: E721 - "1" or 1.0 would read as the right version
            info.status = "error"
            info.error = (f"GANSTUDIO_PLUGIN_API must be a whole number, got {api!r} "
                          f"({type(api).__name__}); write GANSTUDIO_PLUGIN_API = "
                          f"{ganstudio.PLUGIN_API_VERSION}")
            return info
        if api != ganstudio.PLUGIN_API_VERSION:
            info.status = "error"
            info.error = (f"written for plugin API {api}, but this studio speaks "
                          f"{ganstudio.PLUGIN_API_VERSION}; update the plugin or GAN Studio")
            return info
        unknown = _hook_problems(obj)
        if unknown:
            info.status, info.error = "error", "invalid hooks: " + "; ".join(unknown)
            return info
        try:
            self.pm.register(obj, name=name)
        except Exception as e:  # pluggy validates hook names and argument names here
            # pluggy may have recorded the plugin before rejecting one of its hooks:
            # take it out again so none of its hooks is ever called.
            self._forget(obj, name)
            info.status, info.error = "error", f"invalid hooks: {_hook_error(e)}"
            return info
        try:
            impl = getattr(obj, "ganstudio_register_models", None)
            specs = impl() if impl is not None else []
            if specs is None:  # a forgotten `return`: the plugin would silently offer nothing
                raise TypeError("ganstudio_register_models returned None; return a list of "
                                "ModelSpec (an empty list if the plugin offers no model)")
            if not isinstance(specs, (list, tuple)):
                raise TypeError(f"ganstudio_register_models must return a list, "
                                f"got {type(specs).__name__}")
            models = []
            for s in specs:
                s = validate_spec(s)
                s.plugin = name
                models.append(s)
        except BaseException as e:  # noqa: BLE001
            if isinstance(e, KeyboardInterrupt):
                raise
            self.pm.unregister(obj)
            info.status = "error"
            info.error = f"ganstudio_register_models failed: {_plugin_error(e)}"
            info.models = []
            return info
        taken = {m.id for other in self.plugins.values() if other is not info for m in other.models}
        clash = [m.id for m in models if m.id in taken]
        if clash:
            self.pm.unregister(obj)
            info.status = "error"
            info.error = f"model id(s) already provided by another plugin: {', '.join(clash)}"
            return info
        info.models = models
        return info

    def _forget(self, obj: Any, name: str) -> None:
        """Unregister ``obj`` if pluggy holds it (also when half-registered)."""
        try:
            if self.pm.is_registered(obj) or self.pm.has_plugin(name):
                self.pm.unregister(obj, name=name)
        except Exception:  # noqa: BLE001 - best effort on a plugin that is already rejected
            self.pm._name2plugin.pop(name, None)  # pluggy's record of the name

    # -- queries -----------------------------------------------------------------------------
    def models(self, kind: str | None = None) -> list[ModelSpec]:
        out = [m for p in self.plugins.values() if p.status == "ok" for m in p.models]
        return [m for m in out if kind is None or m.kind == kind]

    def get_model(self, model_id: str) -> ModelSpec:
        """The model with this id (or unique prefix/substring); UserError otherwise."""
        models = self.models()
        for m in models:
            if m.id == model_id:
                return m
        matches = [m for m in models if model_id.lower() in m.id.lower()]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            several = ", ".join(sorted(m.id for m in matches))
            raise UserError(f"model '{model_id}' is ambiguous: it matches {several}; "
                            "give the full id")
        known = ", ".join(sorted(m.id for m in models)) or "none"
        failed = [p for p in self.plugins.values() if p.status == "error"]
        hint = f"; {len(failed)} plugin(s) failed to load (see 'ganstudio plugins')" if failed else ""
        raise UserError(f"unknown model '{model_id}' (installed: {known}){hint}")

    def panels(self) -> tuple[list[PanelSpec], list[tuple[str, str]]]:
        """Studio tabs offered through ``ganstudio_studio_panels``, sorted by order and
        title, and ``(plugin name, reason)`` for each plugin whose hook failed or
        returned something other than a list of PanelSpec. Called by the studio only."""
        found: list[PanelSpec] = []
        problems: list[tuple[str, str]] = []
        for impl in self.pm.hook.ganstudio_studio_panels.get_hookimpls():
            try:
                specs = impl.function()
                if not isinstance(specs, (list, tuple)) or \
                        not all(isinstance(s, PanelSpec) for s in specs):
                    raise TypeError("ganstudio_studio_panels must return a list of PanelSpec")
            except Exception as e:  # noqa: BLE001 - a broken plugin costs its tab, not the studio
                problems.append((impl.plugin_name, _plugin_error(e)))
                continue
            found.extend(specs)
        found.sort(key=lambda s: (s.order, s.title))
        return found, problems

    def benchmark_references(self) -> list[Any]:
        """The models plugins offer for the benchmark's comparison with the classic
        DCGAN example (``ganstudio_benchmark_references``), in plugin order; a plugin
        whose hook fails offers none. Called by the benchmark only."""
        from ganstudio.bench.reference import BenchmarkReference
        found: list[Any] = []
        for impl in self.pm.hook.ganstudio_benchmark_references.get_hookimpls():
            try:
                refs = impl.function()
            except Exception:  # noqa: BLE001 - a broken plugin offers nothing
                continue
            found.extend(r for r in (refs or []) if isinstance(r, BenchmarkReference))
        return found

    def plugin_version(self, spec: ModelSpec) -> str:
        info = self.plugins.get(spec.plugin)
        return info.version if info else ""

    def metrics_listener(self, run_dir: str):
        """An engine listener that forwards Metrics and the end of a run to plugin hooks.

        Each plugin's hook is called on its own (in the training thread): one that
        raises is reported once in the run's events.log with its traceback and not
        called again in this run, so a broken logging plugin never stops training
        nor the other plugins' hooks.
        """
        from ganstudio.core import events as ev
        from ganstudio.core.runs import RunFolder

        run_dir = str(run_dir)
        switched_off: set[str] = set()

        def call(hook_name: str, **kwargs: Any) -> None:
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                if impl.plugin_name in switched_off:
                    continue
                args = [dict(kwargs[a]) if isinstance(kwargs[a], dict) else kwargs[a]
                        for a in impl.argnames]
                try:
                    impl.function(*args)
                except Exception:  # noqa: BLE001 - any plugin bug; report and go on
                    switched_off.add(impl.plugin_name)
                    RunFolder(run_dir).log(
                        f"plugin '{impl.plugin_name}' failed in {hook_name} and is switched "
                        f"off for the rest of this run:\n{traceback.format_exc()}", "ERROR")

        def listener(event: ev.Event) -> None:
            if isinstance(event, ev.Metrics):
                call("ganstudio_metrics", run_dir=run_dir, step=event.step, time=event.time,
                     values=dict(event.values))
            elif isinstance(event, ev.Finished):
                call("ganstudio_run_finished", run_dir=run_dir, step=event.step,
                     reason=event.reason)
            elif isinstance(event, ev.Failed):
                call("ganstudio_run_finished", run_dir=run_dir, step=event.step,
                     reason="failed")
        return listener


_default: PluginManager | None = None


def get_plugin_manager(plugins_dir: str | os.PathLike | None = None,
                       *, reload: bool = False) -> PluginManager:
    """The process-wide plugin manager (created on first use)."""
    global _default
    if _default is None or reload or plugins_dir is not None:
        _default = PluginManager(plugins_dir=plugins_dir)
    return _default
