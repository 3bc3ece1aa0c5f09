"""The CLI dispatcher imports only the command's module, so every top-level command must be in COMMANDS."""

from __future__ import annotations

import argparse
import importlib

from mlci import cli


def test_every_registered_command_is_dispatchable():
    for module_name in set(cli.COMMANDS.values()):
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers()
        importlib.import_module(module_name).register(sub)
        for command in sub.choices:
            assert cli.COMMANDS.get(command) == module_name, f"{command} (from {module_name}) missing in COMMANDS"


def test_only_the_commands_module_is_loaded():
    assert cli._wanted_modules(["config", "check"]) == ["mlci.config.cli"]
    assert len(cli._wanted_modules(["--help"])) == len(set(cli.COMMANDS.values()))
