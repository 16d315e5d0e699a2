"""Multi-arch: the offline arm64 image, emulation, manifest lists in the session registry."""
from __future__ import annotations

import pytest

import labkit
from labkit import archive, multiarch

pytestmark = [pytest.mark.skipif(not any(n == "qemu-aarch64" for n, _, _ in multiarch.emulators()),
                                 reason="no arm64 emulation registered (scripts/setup-host.sh as root)"),
              pytest.mark.lab_images("labkit/busybox:latest", "labkit/busybox:arm64")]


def test_arm64_image_has_the_platform_in_its_config_and_runs_emulated(lab):
    with archive.saved("labkit/busybox:arm64") as saved:
        files, config = archive.read_files(saved, lambda p: p == "bin/busybox")
    assert config["architecture"] == "arm64" and multiarch.elf_machine(files["bin/busybox"]).startswith("AArch64")
    assert lab.run("labkit/busybox:arm64", ["uname", "-m"], platform="linux/arm64").stdout.strip() == "aarch64"


def test_manifest_list_serves_each_platform_its_variant(lab):
    registry = lab.registry()
    df = "ARG BASE\nFROM ${BASE}\nRUN uname -m > /m\nCMD [\"cat\", \"/m\"]\n"
    built = multiarch.build_platforms(lab, registry, "multi:1", df,
                                      {"linux/amd64": "labkit/busybox:latest", "linux/arm64": "labkit/busybox:arm64"})
    assert [r[0] for r in built.rows] == ["linux/amd64", "linux/arm64"] and built.index_digest.startswith("sha256:")
    assert "linux/arm64" in lab.platforms(registry.ref("multi:1")).text()
    assert multiarch.run_platform(lab, registry.ref("multi:1"), "linux/arm64", []) == "aarch64"
    assert multiarch.run_platform(lab, registry.ref("multi:1"), "linux/amd64", []) == "x86_64"
    with pytest.raises(labkit.LabkitError, match="no linux/s390x variant"):
        multiarch.run_platform(lab, registry.ref("multi:1"), "linux/s390x", [])
    with pytest.raises(labkit.LabkitError, match="single-platform"):
        multiarch.run_platform(lab, registry.ref("multi:amd64"), "linux/amd64", [])


def test_emulation_is_measured_slower_and_unknown_platforms_skip(lab):
    cost = multiarch.emulation_cost(lab, rounds=1)
    assert cost.ratio > 1.0
    with pytest.raises(labkit.LabSkipped, match="s390x"):
        multiarch.require("linux/s390x")
    multiarch.require("linux/amd64")  # native: nothing to emulate


def test_elf_machine_rejects_non_programs():
    with pytest.raises(labkit.LabkitError, match="Not an ELF"):
        multiarch.elf_machine(b"#!/bin/sh\n")
