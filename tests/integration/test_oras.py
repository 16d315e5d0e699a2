"""ORAS artifacts in the session registry: push, pull by tag and digest, refusals."""
from __future__ import annotations

import hashlib

import pytest

import labkit
from labkit.registry import RegistryUnavailable
from labkit.oras import pull_artifact, push_artifact, referrers


def test_push_pull_and_content_addressing(lab, tmp_path):
    registry = lab.registry()
    (tmp_path / "a.txt").write_text("one")
    first = push_artifact(registry, "notes:1", {"a.txt": "text/plain"}, "application/vnd.test.notes.v1", workdir=tmp_path)
    assert first.artifact_type == "application/vnd.test.notes.v1" and first.layers[0][:3] == ("a.txt", "text/plain", 3)
    (tmp_path / "a.txt").write_text("two")
    second = push_artifact(registry, "notes:1", {"a.txt": "text/plain"}, "application/vnd.test.notes.v1", workdir=tmp_path)
    assert first.digest != second.digest and registry.manifest("notes:1")[1] == second.digest
    old = pull_artifact(registry, f"notes@{first.digest}", tmp_path / "old")
    assert old[0].read_text() == "one"
    new = pull_artifact(registry, "notes:1", tmp_path / "new")
    assert hashlib.sha256(new[0].read_bytes()).hexdigest() == hashlib.sha256(b"two").hexdigest()
    assert referrers(registry, "notes:1") == (False, [])  # distribution 2.8 predates OCI 1.1


def test_bad_input_is_refused_before_anything_is_sent(lab, tmp_path):
    registry = lab.registry()
    (tmp_path / "f").write_text("x")
    with pytest.raises(labkit.LabkitError, match="not a media type"):
        push_artifact(registry, "x:1", {"f": "plain"}, "application/x", workdir=tmp_path)
    with pytest.raises(labkit.LabkitError, match="not a media type"):
        push_artifact(registry, "x:1", {"f": "text/plain"}, "nonsense", workdir=tmp_path)
    with pytest.raises(labkit.LabkitError, match="outside the working directory"):
        push_artifact(registry, "x:1", {"../../etc/hostname": "text/plain"}, "application/x", workdir=tmp_path)
    with pytest.raises(labkit.LabkitError, match="does not exist"):
        push_artifact(registry, "x:1", {"missing": "text/plain"}, "application/x", workdir=tmp_path)
    assert registry.catalog() == []
    registry.stop()
    with pytest.raises(RegistryUnavailable):
        push_artifact(registry, "x:1", {"f": "text/plain"}, "application/x", workdir=tmp_path)
    with pytest.raises(RegistryUnavailable):
        pull_artifact(registry, "x:1", tmp_path / "o")


def test_only_registries_on_this_machine(lab):
    from labkit.registry import RegistryClient
    with pytest.raises(labkit.LabkitError, match="only to registries on this machine"):
        RegistryClient("example.org:5000")


def test_an_artifact_refers_to_its_subject(lab, tmp_path):
    registry = lab.registry()
    (tmp_path / "report.txt").write_text("ok")
    (tmp_path / "sbom.json").write_text("{}")
    image = push_artifact(registry, "app:1", {"report.txt": "text/plain"}, "application/vnd.test.app.v1", workdir=tmp_path)
    for subject in (image.digest, f"app@{image.digest}", "app:1", f"{registry.host}/app@{image.digest}"):
        sbom = push_artifact(registry, "app:sbom", {"sbom.json": "application/json"}, "application/vnd.test.sbom.v1",
                             workdir=tmp_path, subject=subject)
        manifest, _ = registry.manifest(f"app@{sbom.digest}")
        assert manifest["subject"]["digest"] == image.digest and manifest["subject"]["size"] > 0
        assert sbom.equivalent.startswith("oras attach")
