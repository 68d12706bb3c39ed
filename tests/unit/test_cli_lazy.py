"""The command line imports a subcommand's module only when that command is used."""

from __future__ import annotations

import importlib
import subprocess
import sys

import click
from click.testing import CliRunner

from driftwatch.cli import LAZY_COMMANDS, main


def test_lazy_help_lines_match_the_commands() -> None:
    for name, (spec, short) in LAZY_COMMANDS.items():
        module, _, attr = spec.partition(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command), spec
        assert command.get_short_help_str(80) == short, name


def test_every_lazy_command_runs_its_help() -> None:
    runner = CliRunner()
    for name in LAZY_COMMANDS:
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert f"Usage: main {name}" in result.output or "Usage:" in result.output


def test_top_level_help_imports_no_subcommand_module() -> None:
    code = (
        "import sys\n"
        "from driftwatch.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in sys.modules if m.startswith(('driftwatch.monitors', "
        "'driftwatch.streaming', 'driftwatch.rules', 'pandas', 'scipy', 'faust')))\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert "HEAVY []" in out.stdout, out.stdout
    assert "monitor" in out.stdout and "worker" in out.stdout  # listed all the same
