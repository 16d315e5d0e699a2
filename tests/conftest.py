"""Shared test set-up: a marker for daemon tests, and a final check that nothing labelled is left."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DAEMON_DIRS = ("integration", "notebooks")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if any(f"tests{os.sep}{d}{os.sep}" in str(item.fspath) for d in DAEMON_DIRS):
            item.add_marker(pytest.mark.docker)


def daemon_client():
    """A client for the daemon, or a skip; in CI (CI=true) a missing daemon is a failure."""
    from labkit.core import engine
    from labkit.core.errors import DaemonUnavailable
    try:
        return engine.client()
    except DaemonUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI has no Docker engine: {exc}")
        pytest.skip(f"no Docker engine: {exc.message}")


@pytest.fixture(scope="session")
def docker_client():
    return daemon_client()


def image_ids(cli) -> set[str]:
    """Every image except the tagged catalog images `labkit prepare` makes (a test may prepare one)."""
    return {i.id for i in cli.images.list(all=True) if not (i.tags and "labkit.catalog" in (i.labels or {}))}


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind(request):
    from labkit.core import engine
    try:
        images_before = image_ids(engine.client())
    except Exception:
        images_before = None
    yield
    if not any(any(f"tests{os.sep}{d}{os.sep}" in str(i.fspath) for d in DAEMON_DIRS) for i in request.session.items):
        return
    from labkit.core import engine
    cli = engine.client(check=False)
    try:
        left = cli.containers.list(all=True, filters={"label": "labkit.session"})
    except Exception:
        return
    # Only this run's: a session owned by this process or by a process that is gone (its kernels,
    # `labkit verify` children). Another learner's live session on the same engine is not ours to judge.
    from labkit.core.session import OWNER_LABEL, owner_alive, owner_id
    me = owner_id()
    left = [c for c in left if c.labels.get(OWNER_LABEL) == me or owner_alive(c.labels.get(OWNER_LABEL, "")) is False]
    names = [c.name for c in left]
    for c in left:
        c.remove(force=True)
    assert not names, f"containers labelled labkit.session left behind by the suite: {names}"
    assert not rootless_processes(), f"processes of the rootless lab user left behind: {rootless_processes()}"
    if images_before is not None:
        new = image_ids(cli) - images_before
        assert not new, f"images left behind by the suite (labelled or not): {sorted(new)[:10]}"


def rootless_processes() -> list[str]:
    """Live (not zombie) processes of notebook 06's lab user: a rootless engine or its containers."""
    import pwd
    try:
        uid = pwd.getpwnam("labkit-rootless").pw_uid
    except KeyError:
        return []
    out = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and proc.stat().st_uid == uid and " Z " not in (proc / "stat").read_text():
                out.append(f"{proc.name} {(proc / 'comm').read_text().strip()}")
        except OSError:
            pass
    return out
