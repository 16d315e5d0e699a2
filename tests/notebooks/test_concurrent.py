"""Two learners on one engine: two copies of each build-heavy notebook run at the same moment
(two `labkit verify` processes, each its own session). Both must pass, with their checks proven
and their compared outputs unchanged, and together leave nothing behind."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from labkit.core.session import LAB_LABEL
from tests.conftest import image_ids

REPO = Path(__file__).resolve().parents[2]
BUILD_HEAVY = ["02-buildkit", "03-build-cache", "07-scanning", "11-builders", "15-build-farm"]
LABKIT = Path(sys.executable).with_name("labkit")


def labelled(cli, topic: str) -> list[str]:
    flt = {"label": f"{LAB_LABEL}={topic}"}
    return ([f"container {c.name}" for c in cli.containers.list(all=True, filters=flt)]
            + [f"network {n.name}" for n in cli.networks.list(filters=flt)]
            + [f"volume {v.name}" for v in cli.volumes.list(filters=flt)]
            + [f"image {i.tags or i.id}" for i in cli.images.list(filters=flt)])


@pytest.mark.parametrize("name", BUILD_HEAVY)
def test_two_copies_at_once(name, tmp_path, docker_client):
    before = image_ids(docker_client)
    copies = []
    for i in (1, 2):
        out = tmp_path / f"copy{i}"
        log = open(tmp_path / f"copy{i}.log", "w")
        copies.append((out, log, subprocess.Popen([str(LABKIT), "verify", name, "--out", str(out)], cwd=REPO,
                                                  stdout=log, stderr=subprocess.STDOUT)))
    for out, log, proc in copies:
        proc.wait(timeout=1200)
        log.close()
    results = []
    for out, log, proc in copies:
        report = out / "report.json"
        assert report.exists(), f"{name}: no report\n{Path(log.name).read_text()[-3000:]}"
        results += json.loads(report.read_text())
    failed = [f"{r['notebook']}: {r['reason']}" for r in results if r["status"] != "passed"]
    assert not failed, f"{name}, two copies at once:\n" + "\n".join(failed)
    topic = name[3:]
    assert not labelled(docker_client, topic), f"left behind by two copies of {name}: {labelled(docker_client, topic)}"
    assert not image_ids(docker_client) - before, f"{name}: images left behind"
    each = ", ".join(f"{r['seconds']:.0f} s" for r in results)
    print(f"{name}: two copies at once passed (each copy: {each})")
