"""``ganstudio plugins`` (list, check), ``ganstudio settings MODEL`` and ``ganstudio plugin``
(tools for plugin authors).

``plugins --check NAME`` and ``plugin check NAME`` are one command: both run
``cmd_check``; likewise ``plugins MODEL`` and ``settings MODEL`` both run ``cmd_settings``.
"""
from __future__ import annotations

import argparse
import json
import sys
import textwrap
from typing import Any

from ganstudio.cli.command import Command
from ganstudio.cli.exits import EXIT_OK, EXIT_USAGE
from ganstudio.cli.messages import one_line, shown


def _manager(args: argparse.Namespace):
    from ganstudio.plugins import get_plugin_manager
    return get_plugin_manager(getattr(args, "plugins_dir", None))


# -- ganstudio plugins ---------------------------------------------------------------------------
def configure_plugins(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", metavar="MODEL",
                   help="list this model's settings instead (the same as "
                        "'ganstudio settings MODEL')")
    p.add_argument("--check", metavar="NAME", help="run the conformance checks on a plugin "
                                                   "(the same as 'ganstudio plugin check NAME')")
    p.add_argument("--json", action="store_true", help="with MODEL: the settings as JSON")
    _no_ddp_option(p)


def _no_ddp_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-ddp", action="store_true",
                   help="with --check: skip training models that declare 'ddp' on two "
                        "processes (about 15 s each)")


def cmd_plugins(args: argparse.Namespace) -> int:
    if getattr(args, "check", None):
        return cmd_check(argparse.Namespace(**{**vars(args), "name": args.check}))
    if getattr(args, "model", None):
        return cmd_settings(args)
    pm = _manager(args)
    print(f"plugin folder: {shown(pm.plugins_dir)}")
    if not pm.plugins:
        print("no plugins found")
    for name, info in sorted(pm.plugins.items()):
        version = f" {info.version}" if info.version else ""
        print(f"{name}{version} [{info.source}] {info.status}")
        if info.error:
            print(f"    error: {one_line(info.error)}")
        for m in info.models:
            print(f"    model {m.id} ({m.kind}): {m.name}")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    """The conformance kit on one plugin (by plugin name or model id); 0 when all pass."""
    from ganstudio.testing import check_command
    return check_command(_manager(args), args.name,
                         processes=not getattr(args, "no_ddp", False))


# -- ganstudio settings MODEL -------------------------------------------------------------------
def configure_settings(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="model id (see 'ganstudio plugins')")
    p.add_argument("--json", action="store_true",
                   help="print the settings as JSON (name, type, default, min, max, choices, "
                        "help, group, advanced)")


def cmd_settings(args: argparse.Namespace) -> int:
    """Every setting of a model: name, type, default, bounds or choices, help."""
    spec = _manager(args).get_model(args.model)
    if getattr(args, "json", False):
        print(json.dumps({"model": spec.id, "name": spec.name, "kind": spec.kind,
                          "plugin": spec.plugin,
                          "settings": [_field_dict(f) for f in spec.schema]}, indent=2))
        return EXIT_OK
    print(format_settings(spec))
    return EXIT_OK


def _field_dict(field: Any) -> dict:
    d = field.to_dict()
    json.dumps(d, default=str)   # every value must be printable as JSON
    return json.loads(json.dumps(d, default=str))


def format_settings(spec: Any, width: int = 92) -> str:
    """The settings of ``spec`` grouped as in the studio's form, each with its help."""
    fields = list(spec.schema)
    lines = [f"{spec.id}: {spec.name} ({spec.kind}, plugin {spec.plugin})"]
    if spec.help:
        lines += textwrap.wrap(" ".join(spec.help.split()), width)
    if not fields:
        return "\n".join(lines + ["", "this model has no settings"])
    lines += [""] + textwrap.wrap(
        f"{len(fields)} settings; change one with --set NAME=VALUE (train, gui, stylize). "
        "* = advanced (folded away in the studio's form).", width)
    name_w = max(len(f.name) for f in fields) + 2
    type_w = max(len(str(f.type)) for f in fields) + 1
    default_w = min(max(len(_value(f.default)) for f in fields), 12) + 1
    groups: dict[str, list[Any]] = {}
    for f in fields:
        groups.setdefault(f.group or "Other", []).append(f)
    for group, members in groups.items():
        lines += ["", group]
        for f in members:
            star = "*" if getattr(f, "advanced", False) else " "
            head = (f"{star} {f.name:<{name_w}}{str(f.type):<{type_w}}"
                    f"default {_value(f.default):<{default_w}}{_bounds(f)}")
            lines.append(head.rstrip())
            if f.help:
                lines += textwrap.wrap(" ".join(f.help.split()), width, initial_indent=" " * 6,
                                       subsequent_indent=" " * 6)
    return "\n".join(lines)


def _value(value: Any) -> str:
    if value is None:
        return "auto"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(_value(v) for v in value) or "(none)"
    if value == "":
        return "(empty)"
    return str(value)


def _bounds(field: Any) -> str:
    if field.choices:
        return "one of " + ", ".join(_value(c) for c in field.choices)
    lo, hi = field.min, field.max
    if lo is not None and hi is not None:
        return f"{_value(lo)} to {_value(hi)}"
    if lo is not None:
        return f"at least {_value(lo)}"
    if hi is not None:
        return f"at most {_value(hi)}"
    return ""


# -- ganstudio plugin new / check ----------------------------------------------------------------
def configure_plugin(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="plugin_command", metavar="ACTION")
    new = sub.add_parser("new", help="write a working skeleton plugin package",
                         description="Write NAME/ with pyproject.toml (entry point), a small "
                                     "working GAN and a conformance test.")
    new.add_argument("name", help="plugin name, e.g. my-gan")
    new.add_argument("--dir", default=".", help="parent folder (default: the current folder)")
    new.set_defaults(func=cmd_plugin_new)
    check = sub.add_parser("check", help="run the conformance kit (= plugins --check)")
    check.add_argument("name", help="plugin name or model id")
    _no_ddp_option(check)
    check.set_defaults(func=cmd_check)

    def no_action(args: argparse.Namespace) -> int:
        p.print_help(sys.stderr)
        return EXIT_USAGE

    p.set_defaults(no_action=no_action)


def cmd_plugin(args: argparse.Namespace) -> int:
    """``ganstudio plugin`` without an action: its help, exit 2."""
    return args.no_action(args)


def cmd_plugin_new(args: argparse.Namespace) -> int:
    from ganstudio.cli.plugin_skeleton import FILES, PluginNames, write_skeleton
    root = write_skeleton(args.name, args.dir)
    names = PluginNames(args.name)
    print(f"wrote the plugin package {names.distribution} in {shown(root)}/")
    for rel in FILES:
        print(f"  {names.fill(rel)}")
    print("next:")
    print(f"  python -m pip install -e {shown(root)}")
    print(f"  ganstudio plugins --check {names.entry_point}")
    print(f"  ganstudio train --model {names.model_id} --data DIR --out runs/{names.snake}")
    return EXIT_OK


PLUGINS = Command("plugins", "list plugins, their models and status", configure_plugins,
                  cmd_plugins)
SETTINGS = Command("settings", "list every setting of a model: type, default, bounds, help",
                   configure_settings, cmd_settings)
PLUGIN = Command("plugin", "tools for plugin authors (new, check)", configure_plugin, cmd_plugin,
                 description="Tools for plugin authors. See PLUGINS.md.")
