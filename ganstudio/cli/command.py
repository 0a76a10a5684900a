"""One row of the command table: a subcommand's name, its options and what it runs.

A command module defines its rows (``TRAIN = Command(...)``) and the table in
``ganstudio/cli/__init__.py`` lists them; nothing is found by name at run time.
Command modules import only argparse and light helpers at their top: every
``ganstudio`` start (the studio's included) builds the whole parser, so torch,
the engine and Qt are imported inside the functions that run.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    #: adds the command's arguments (and sub-actions) to its parser
    configure: Callable[[argparse.ArgumentParser], None]
    #: runs the command; returns the exit code (or raises UserError: see exits.py)
    run: Callable[[argparse.Namespace], int]
    description: str | None = None
    aliases: tuple[str, ...] = field(default=())

    def add_to(self, subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
        p = subparsers.add_parser(self.name, help=self.help, aliases=list(self.aliases),
                                  description=self.description or _sentence(self.help))
        self.configure(p)
        p.set_defaults(func=self.run)
        return p


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
