"""``ganstudio plugins`` (list, check) and ``ganstudio plugin`` (tools for plugin authors).

``plugins --check NAME`` and ``plugin check NAME`` are one command: both run
``cmd_check``.
"""
from __future__ import annotations

import argparse
import sys

from ganstudio.cli.command import Command
from ganstudio.cli.exits import EXIT_OK, EXIT_USAGE
from ganstudio.cli.messages import shown


def _manager(args: argparse.Namespace):
    from ganstudio.plugins import get_plugin_manager
    return get_plugin_manager(getattr(args, "plugins_dir", None))


# -- ganstudio plugins ---------------------------------------------------------------------------
def configure_plugins(p: argparse.ArgumentParser) -> None:
    p.add_argument("--check", metavar="NAME", help="run the conformance checks on a plugin "
                                                   "(the same as 'ganstudio plugin check NAME')")


def cmd_plugins(args: argparse.Namespace) -> int:
    if getattr(args, "check", None):
        return cmd_check(argparse.Namespace(**{**vars(args), "name": args.check}))
    pm = _manager(args)
    print(f"plugin folder: {shown(pm.plugins_dir)}")
    if not pm.plugins:
        print("no plugins found")
    for name, info in sorted(pm.plugins.items()):
        version = f" {info.version}" if info.version else ""
        print(f"{name}{version} [{info.source}] {info.status}")
        if info.error:
            print(f"    error: {shown(info.error)}")
        for m in info.models:
            print(f"    model {m.id} ({m.kind}): {m.name}")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    """The conformance kit on one plugin (by plugin name or model id); 0 when all pass."""
    from ganstudio.testing import check_command
    return check_command(_manager(args), args.name)


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
PLUGIN = Command("plugin", "tools for plugin authors (new, check)", configure_plugin, cmd_plugin,
                 description="Tools for plugin authors. See PLUGINS.md.")
