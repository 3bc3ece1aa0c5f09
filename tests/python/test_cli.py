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


def test_every_test_directory_is_collected(request):
    """pytest skips directories named like its `norecursedirs` defaults (build, dist, venv, ...) without a word:
    tests/python/build once held 19 tests that the suite never ran. Every directory with tests must be collectable."""
    import fnmatch
    from pathlib import Path

    here = Path(__file__).resolve().parent
    patterns = request.config.getini("norecursedirs")
    dirs = {p.parent for p in here.rglob("test_*.py")} - {here}
    skipped = sorted(str(d.relative_to(here)) for d in dirs
                     if any(fnmatch.fnmatch(part, pat) for part in d.relative_to(here).parts for pat in patterns))
    assert skipped == [], f"pytest would never collect {skipped} (norecursedirs {patterns}): rename them"
    assert len(dirs) >= 10  # the walk found the suite
