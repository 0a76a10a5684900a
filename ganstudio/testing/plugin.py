"""A whole plugin: its load status, its listener hooks called once with made-up
values, then every model; and the ``plugins --check`` command's report."""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

from .model import check_model
from .results import FAIL, PASS, SKIP, CheckResult, _exc_text, format_report

def _check_listener_hooks(pm: Any, info: Any, workdir: Path) -> list[CheckResult]:
    """Call a plugin's non-model hooks once with made-up values."""
    from ganstudio import hookspecs

    results = []
    run_dir = workdir / "listener_run"
    run_dir.mkdir(parents=True, exist_ok=True)
    calls = {
        "ganstudio_metrics": [dict(run_dir=str(run_dir), step=1, time=0.5,
                                   values={"loss_d": 1.25, "loss_g": 0.75}),
                              dict(run_dir=str(run_dir), step=2, time=1.0,
                                   values={"loss_d": 1.0, "loss_g": 0.5})],
        "ganstudio_run_finished": [dict(run_dir=str(run_dir), step=2, reason="completed")],
    }
    for hook_name, kwargs_list in calls.items():
        caller = getattr(pm.pm.hook, hook_name, None)
        impls = [i for i in caller.get_hookimpls() if i.plugin is info.module] if caller else []
        if not impls or not hasattr(hookspecs, hook_name):
            continue
        try:
            for kwargs in kwargs_list:
                for impl in impls:
                    impl.function(*[kwargs[a] for a in impl.argnames])
            results.append(CheckResult("", "hooks", PASS, f"{hook_name} accepted "
                                                          f"{len(kwargs_list)} call(s)"))
        except Exception as e:  # noqa: BLE001
            results.append(CheckResult("", "hooks", FAIL, f"{hook_name} raised {_exc_text(e)}"))
    return results


def resolve_target(pm: Any, name: str) -> tuple[Any, list[Any]]:
    """(PluginInfo, models to check) for a plugin name or a model id; UserError otherwise."""
    from ganstudio.core.errors import UserError

    if name in pm.plugins:
        info = pm.plugins[name]
        return info, list(info.models)
    for info in pm.plugins.values():
        for m in info.models:
            if m.id == name:
                return info, [m]
    known = ", ".join(sorted(pm.plugins)) or "none"
    raise UserError(f"no plugin or model named '{name}' (plugins: {known}); "
                    "is the package installed in this environment?")


def check_processes(pm: Any, spec: Any) -> CheckResult:
    """The ``ddp`` check on two processes (:mod:`ganstudio.core.ddp_check`): a few steps
    on two gloo processes, then the weights must be identical on both."""
    from ganstudio.core.ddp_check import check_ddp

    outcome = check_ddp(spec.id, plugins_dir=str(pm.plugins_dir))
    if outcome.ok:
        return CheckResult(spec.id, "ddp", PASS, "two gloo processes trained a few steps; "
                                                  "their weights are identical")
    return CheckResult(spec.id, "ddp", FAIL, outcome.detail)


def check_plugin(pm: Any, name: str, *, workdir: str | Path | None = None,
                 overrides: dict | None = None, processes: bool = False
                 ) -> list[CheckResult]:
    """All checks for the plugin (or the single model) called ``name``. With
    ``processes``, a model declaring ``ddp`` is also trained on two processes (about
    15 s more per model)."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="ganstudio-kit-") as tmp:
            return check_plugin(pm, name, workdir=tmp, overrides=overrides,
                                processes=processes)
    workdir = Path(workdir)
    info, models = resolve_target(pm, name)
    if info.status != "ok":
        return [CheckResult("", "load", FAIL, info.error or info.status)]
    n = len(info.models)
    results = [CheckResult("", "load", PASS,
                           f"{info.source} plugin '{info.name}' {info.version}".rstrip()
                           + f": plugin API {getattr(info.module, 'GANSTUDIO_PLUGIN_API', '?')}, "
                           f"{n} model{'s' if n != 1 else ''}")]
    if name in pm.plugins:
        results += _check_listener_hooks(pm, info, workdir)
    for i, spec in enumerate(models):
        checked = check_model(spec, workdir=workdir / f"model{i}", module=info.module,
                              overrides=overrides)
        results += checked
        if processes and spec.has("ddp"):
            if any(r.name == "build" and not r.ok for r in checked):
                results.append(CheckResult(spec.id, "ddp", SKIP, "the model was not built"))
            else:
                results.append(check_processes(pm, spec))
    return results


def check_command(pm: Any, name: str, stream: TextIO | None = None, *,
                  processes: bool = True) -> int:
    """``ganstudio plugins --check NAME``: print the report; 0 when nothing failed.
    ``processes``: also the two-process ``ddp`` check for models declaring ``ddp``."""
    stream = stream or sys.stdout
    results = check_plugin(pm, name, processes=processes)
    print(format_report(name, results), file=stream, flush=True)
    return 0 if all(r.ok for r in results) else 1
