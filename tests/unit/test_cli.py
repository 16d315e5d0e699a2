from __future__ import annotations

import subprocess
import sys

import pytest

from labkit import cli


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in ("doctor", "images", "prepare", "clean", "lab"):
        assert command in out


def test_console_script_module_runs():
    out = subprocess.run([sys.executable, "-m", "labkit.cli", "prepare", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--offline" in out.stdout


def test_unknown_command_is_a_usage_error():
    with pytest.raises(SystemExit) as exit_:
        cli.main(["frobnicate"])
    assert exit_.value.code == 2
