"""Advisory matching, inventory and layered file reading, without a daemon."""
from __future__ import annotations

import io
import json
import tarfile

import pytest

from labkit import advisories, archive, scan
from labkit.core.errors import LabkitError

PKG = scan.Package


def test_osv_ranges_use_each_ecosystems_version_order():
    ranges = [[("introduced", "0"), ("fixed", "1.24.2")]]
    assert advisories.affected("1.24.1", ranges, "PyPI")
    assert not advisories.affected("1.24.2", ranges, "PyPI")
    assert not advisories.affected("1.24.10", ranges, "PyPI")  # a string comparison would say affected
    assert advisories.affected("1.24.2rc1", ranges, "PyPI")  # a pre-release comes before the release
    deb = [[("introduced", "0"), ("fixed", "1:2.0-1")]]
    assert advisories.affected("2.9-1", deb, "Debian:12")  # no epoch < epoch 1
    assert advisories.affected("1:2.0~rc1-1", deb, "Debian:12")  # ~ sorts before the release
    assert not advisories.affected("1:2.0-1+deb12u1", deb, "Debian:12")
    assert advisories.affected("5", [[("introduced", "0"), ("last_affected", "5")]], "PyPI")
    assert not advisories.affected("6", [[("introduced", "0"), ("last_affected", "5")]], "PyPI")


def test_snapshot_matches_the_real_advisories_and_skips_others():
    snapshot = advisories.load_snapshot()
    assert {a.id for a in snapshot} >= {"GHSA-x84v-xcm2-53pg", "GHSA-mh33-7rrq-662w", "DEBIAN-CVE-2011-3374"}
    old = [PKG("urllib3", "1.24.1", "PyPI", "x"), PKG("Requests", "2.19.1", "PyPI", "x"), PKG("apt", "2.6.1", "Debian:12", "dpkg")]
    found, blind = advisories.match(old, snapshot)
    ids = {a.id for _, a in found}
    assert {"GHSA-mh33-7rrq-662w", "GHSA-v845-jxx5-vc9f", "GHSA-x84v-xcm2-53pg", "GHSA-j8r2-6x86-q33q",
            "DEBIAN-CVE-2011-3374"} == ids
    assert "GHSA-q2q7-5pp4-w6pg" not in ids and blind == []
    new = [PKG("urllib3", "2.5.0", "PyPI", "x"), PKG("requests", "2.32.4", "PyPI", "x")]
    assert advisories.match(new, snapshot) == ([], [])
    other_release = [PKG("apt", "2.6.1", "Debian:11", "dpkg")]
    assert advisories.match(other_release, snapshot)[0] == []  # an advisory for bookworm is not one for bullseye


def test_unknown_ecosystems_and_bad_versions_are_reported_not_dropped():
    snapshot = advisories.load_snapshot()
    found, blind = advisories.match([PKG("left-pad", "1.0", "npm", "x"), PKG("urllib3", "not a version!", "PyPI", "x")],
                                    snapshot)
    assert found == []
    assert any("'npm'" in b for b in blind) and any("not a valid PyPI version" in b for b in blind)


def test_inventory_reads_dpkg_apk_and_python_metadata():
    files = {
        "etc/os-release": b'ID=debian\nVERSION_ID="12"\n',
        scan.DPKG_STATUS: b"Package: apt\nStatus: install ok installed\nVersion: 2.6.1\n\n"
                          b"Package: gone\nStatus: deinstall ok config-files\nVersion: 1.0\n",
        "usr/lib/python3/dist-packages/urllib3-1.24.1.dist-info/METADATA": b"Metadata-Version: 2.1\nName: urllib3\nVersion: 1.24.1\n",
    }
    packages, blind = scan.inventory(files)
    assert {(p.name, p.version, p.ecosystem) for p in packages} == {("apt", "2.6.1", "Debian:12"), ("urllib3", "1.24.1", "PyPI")}
    assert not any("no OS package database" in b for b in blind)
    apk = {"etc/os-release": b"ID=alpine\nVERSION_ID=3.19.1\n", scan.APK_DB: b"C:Q1x\nP:musl\nV:1.2.4-r2\n\nP:zlib\nV:1.3-r2\n"}
    assert {(p.name, p.ecosystem) for p in scan.inventory(apk)[0]} == {("musl", "Alpine:v3.19"), ("zlib", "Alpine:v3.19")}
    bare_packages, bare_blind = scan.inventory({})
    assert bare_packages == [] and any("no OS package database" in b for b in bare_blind)


def test_cyclonedx_sbom_lists_every_package_with_a_purl():
    bom = scan.cyclonedx("lab-x-abcdef-shop", [PKG("apt", "2.6.1", "Debian:12", "dpkg"), PKG("urllib3", "1.24.1", "PyPI", "p")])
    assert bom["bomFormat"] == "CycloneDX" and bom["metadata"]["component"]["name"] == "shop"
    assert sorted(c["purl"] for c in bom["components"]) == ["pkg:deb/debian/apt@2.6.1?distro=debian-12", "pkg:pypi/urllib3@1.24.1"]


def _layer(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _archive(layers: list[dict[str, bytes]]) -> io.BytesIO:
    """A legacy docker-archive, as `docker save` of Docker 20.10 writes it."""
    config = {"rootfs": {"diff_ids": [f"sha256:{i:064x}" for i in range(len(layers))]}, "history": []}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        entries = {"config.json": json.dumps(config).encode(),
                   "manifest.json": json.dumps([{"Config": "config.json", "Layers": [f"{i}/layer.tar" for i in range(len(layers))]}]).encode()}
        entries.update({f"{i}/layer.tar": _layer(files) for i, files in enumerate(layers)})
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def test_read_files_applies_layers_and_whiteouts():
    saved = _archive([{"a/keep.txt": b"1", "a/gone.txt": b"x", "b/dir/f.txt": b"y"},
                        {"a/keep.txt": b"2", "a/.wh.gone.txt": b"", "b/.wh..wh..opq": b"", "b/new.txt": b"z"}])
    files, _ = archive.read_files(saved, lambda p: True)
    assert files == {"a/keep.txt": b"2", "b/new.txt": b"z"}


def test_a_corrupt_archive_is_a_clear_error():
    with pytest.raises(LabkitError, match="not an image archive"):
        archive.read_files(io.BytesIO(b"this is not a tar file at all" * 100), lambda p: True)
    empty = io.BytesIO()
    with tarfile.open(fileobj=empty, mode="w"):
        pass
    empty.seek(0)
    with pytest.raises(LabkitError, match="no image manifest"):
        archive.read_files(empty, lambda p: True)


def test_gate_can_ignore_findings_without_a_fix():
    report = scan.ScanReport("img", [], [scan.Finding("X", (), "apt", "1", "no fix", "HIGH", ""),
                                         scan.Finding("Y", (), "lib", "1", "2", "MEDIUM", "")], [], [], {})
    assert not report.gate().passed and report.gate(ignore_unfixed=True).passed
    assert not report.gate(fail_on=["MEDIUM"], ignore_unfixed=True).passed
