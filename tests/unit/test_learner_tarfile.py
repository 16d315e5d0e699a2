"""inspect.safe_extract: what it refuses (members escaping the target folder, links included) and
what it keeps, on every Python labkit supports: tarfile's `filter=` needs 3.11.4 or later, and
Debian 12's Python is 3.11.2 (the learner's venv of scripts/as-learner.sh runs these tests too)."""
from __future__ import annotations

import io
import os
import tarfile

import pytest

import labkit.archive
from labkit.archive import UnsafeArchive, safe_extract


def archive(*members: tuple) -> tarfile.TarFile:
    """(name, kind, extra) members: kind file (extra: bytes), dir, sym / lnk (extra: target), chr."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, *extra in members:
            info = tarfile.TarInfo(name)
            data = None
            if kind == "file":
                data = extra[0] if extra else b"x"
                info.size, info.mode = len(data), extra[1] if len(extra) > 1 else 0o644
            elif kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, extra[0] if extra else 0o755
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, extra[0]
            elif kind == "lnk":  # a hard link's own mode lands on the shared file: same as its target's
                info.type, info.linkname, info.mode = tarfile.LNKTYPE, extra[0], extra[1] if len(extra) > 1 else 0o644
            elif kind == "chr":
                info.type, info.devmajor, info.devminor, info.mode = tarfile.CHRTYPE, 1, 3, 0o666
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    buf.seek(0)
    return tarfile.open(fileobj=buf)


@pytest.fixture(params=["with filters", "without filters (Python < 3.11.4)"])
def python(request, monkeypatch):
    """Each test runs with tarfile as it is here, and as Python 3.10 to 3.11.3 have it: no
    extraction filters, and extractall() refuses the `filter` argument."""
    if request.param.startswith("without"):
        original = tarfile.TarFile.extractall
        monkeypatch.setattr(labkit.archive, "_TAR_FILTERS", False)

        def old_extractall(self, path=".", members=None, *, numeric_owner=False, **kwargs):
            if kwargs:
                raise TypeError(f"TarFile.extractall() got an unexpected keyword argument {next(iter(kwargs))!r}")
            return original(self, path, members, numeric_owner=numeric_owner)
        monkeypatch.setattr(tarfile.TarFile, "extractall", old_extractall)
    return request.param


@pytest.fixture
def dirs(tmp_path):
    target, outside = tmp_path / "target", tmp_path / "outside"
    target.mkdir()
    outside.mkdir()
    (outside / "victim").write_text("untouched\n")
    return target, outside


def untouched(outside):
    return sorted(p.name for p in outside.iterdir()) == ["victim"] and (outside / "victim").read_text() == "untouched\n"


@pytest.mark.parametrize("rootfs", [False, True], ids=["data", "rootfs"])
@pytest.mark.parametrize("name", ["../outside/evil", "a/../../outside/evil", "/tmp/labkit-evil-absolute"])
def test_names_outside_or_absolute_are_refused(python, dirs, name, rootfs):
    target, outside = dirs
    with pytest.raises(UnsafeArchive) as err:
        safe_extract(archive((name, "file", b"pwned")), target, rootfs=rootfs)
    assert name in str(err.value) and "Hint: " in str(err.value)
    assert untouched(outside) and not os.path.exists("/tmp/labkit-evil-absolute")


@pytest.mark.parametrize("link", ["../outside", "a/../../outside", "ABSOLUTE"])
def test_a_symlink_escaping_is_refused_in_data_mode(python, dirs, link):
    target, outside = dirs
    link = str(outside) if link == "ABSOLUTE" else link
    with pytest.raises(UnsafeArchive):
        safe_extract(archive(("escape", "sym", link)), target)
    assert not os.path.lexists(target / "escape")


@pytest.mark.parametrize("rootfs", [False, True], ids=["data", "rootfs"])
def test_writing_through_a_link_is_refused_even_in_a_root_filesystem(python, dirs, rootfs):
    """The classic: a link to a host folder, then a file "inside" the link."""
    target, outside = dirs
    with pytest.raises(UnsafeArchive) as err:
        safe_extract(archive(("etc", "dir"), ("etc", "sym", str(outside)) if not rootfs else ("etc2", "sym", str(outside)),
                             ("etc2/victim", "file", b"pwned")), target, rootfs=rootfs)
    assert untouched(outside), err.value


def test_a_file_member_replaces_an_earlier_link_instead_of_following_it(python, dirs):
    target, outside = dirs
    skipped = safe_extract(archive(("victim", "sym", "/" + str(outside / "victim").lstrip("/")),
                                   ("victim", "file", b"mine\n")), target, rootfs=True)
    assert skipped == [] and untouched(outside)
    assert not (target / "victim").is_symlink() and (target / "victim").read_text() == "mine\n"


def test_a_directory_member_replaces_an_earlier_link_so_its_mode_lands_inside(python, dirs):
    target, outside = dirs
    os.chmod(outside, 0o755)
    safe_extract(archive(("d", "sym", str(outside)), ("d", "dir", 0o700)), target, rootfs=True)
    assert (target / "d").is_dir() and not (target / "d").is_symlink()
    assert outside.stat().st_mode & 0o777 == 0o755


@pytest.mark.parametrize("rootfs", [False, True], ids=["data", "rootfs"])
def test_hard_links_outside_are_refused(python, dirs, rootfs):
    target, outside = dirs
    with pytest.raises(UnsafeArchive):
        safe_extract(archive(("h", "lnk", "../outside/victim")), target, rootfs=rootfs)
    with pytest.raises(UnsafeArchive):  # a hard link to a link: os.link would link the host file itself
        safe_extract(archive(("s", "sym", str(outside / "victim")), ("h2", "lnk", "s"), ("h2", "file", b"pwned")),
                     target, rootfs=rootfs)
    assert untouched(outside)


def test_a_root_filesystem_keeps_absolute_links_modes_and_hard_links_inside(python, dirs):
    target, outside = dirs
    skipped = safe_extract(archive(("bin", "dir"), ("bin/busybox", "file", b"#!busybox", 0o4755),
                                   ("bin/sh", "sym", "/bin/busybox"), ("bin/ls", "lnk", "bin/busybox", 0o4755),
                                   ("tmp", "dir", 0o1777), ("lib", "sym", "usr/lib")), target, rootfs=True)
    assert skipped == []
    assert os.readlink(target / "bin/sh") == "/bin/busybox"  # what chroot resolves inside the root
    assert (target / "bin/ls").read_bytes() == b"#!busybox"
    assert (target / "bin/busybox").stat().st_mode & 0o7777 == 0o4755
    assert (target / "tmp").stat().st_mode & 0o7777 == 0o1777
    assert untouched(outside)


def test_data_mode_drops_set_id_bits_and_refuses_devices(python, dirs):
    target, _ = dirs
    safe_extract(archive(("tool", "file", b"x", 0o6777)), target)
    assert (target / "tool").stat().st_mode & 0o7777 == 0o755
    with pytest.raises(UnsafeArchive):
        safe_extract(archive(("null", "chr")), target)


def test_device_nodes_are_left_out_of_a_root_filesystem_when_not_root(python, dirs, monkeypatch):
    target, _ = dirs
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    skipped = safe_extract(archive(("dev", "dir"), ("dev/null", "chr"), ("etc", "dir"),
                                   ("etc/hostname", "file", b"box\n")), target, rootfs=True)
    assert skipped == ["dev/null"] and (target / "etc/hostname").read_text() == "box\n"
