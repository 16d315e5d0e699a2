"""Contexts and CLI plugins in a session-owned DOCKER_CONFIG."""
from __future__ import annotations

import os

import pytest

import labkit
from labkit.contexts import DaemonNotAnswering, DockerConfig

PLUGIN = """#!/bin/sh
if [ "$1" = "docker-cli-plugin-metadata" ]; then
  echo '{"SchemaVersion": "0.1.0", "Vendor": "test", "Version": "0.1", "ShortDescription": "Echo arguments"}'
  exit 0
fi
shift
echo "args: $*"
"""


def test_contexts_live_in_the_session_config_and_go_at_cleanup(lab):
    cfg = DockerConfig(lab)
    cfg.create_context("again", "unix:///var/run/docker.sock", "the same engine")
    cfg.use("again")
    assert cfg.current() == "again"
    assert "again *" in cfg.contexts().text()
    assert cfg.docker("ps", "-q").exit_code == 0
    home = os.path.expanduser("~/.docker/contexts")
    before = sorted(os.listdir(home)) if os.path.isdir(home) else []
    lab.cleanup()
    assert not cfg.dir.exists()
    assert (sorted(os.listdir(home)) if os.path.isdir(home) else []) == before  # the user's own contexts untouched


def test_dead_daemon_is_a_quick_clear_error(lab):
    cfg = DockerConfig(lab)
    cfg.create_context("dead", f"unix://{cfg.dir}/none.sock")
    with pytest.raises(DaemonNotAnswering) as info:
        cfg.docker("--context", "dead", "ps")
    assert "Hint:" in str(info.value)


def test_plugin_protocol(lab):
    cfg = DockerConfig(lab)
    cfg.install_plugin("echoargs", PLUGIN)
    assert cfg.docker("echoargs", "a", "b").stdout.strip() == "args: a b"
    assert "Echo arguments" in cfg.plugins().text()
    assert any(line.strip().startswith("echoargs") for line in cfg.docker("--help").stdout.splitlines())
    with pytest.raises(labkit.LabkitError, match="#!"):
        cfg.install_plugin("bad", "echo no shebang")
