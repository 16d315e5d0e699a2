"""The command line a result shows (`equivalent: ...`) is real: pasted into a shell, it works."""
from __future__ import annotations

import subprocess

import pytest

from labkit.core import engine


def shell(line: str) -> subprocess.CompletedProcess:
    cli = engine.require_buildkit()  # the docker CLI labkit found, first on PATH as `docker`
    env = {**cli.env(), "PATH": f"{cli.path.rsplit('/', 1)[0]}:/usr/bin:/bin"}
    return subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=300, env=env)


def test_a_run_shows_its_docker_run_and_that_command_works(lab, monkeypatch):
    monkeypatch.setenv("LABKIT_STABLE", "0")
    result = lab.run("labkit/busybox", ["echo", "hi"], environment={"GREETING": "hi there"})
    assert result.stdout == "hi\n"
    assert "equivalent: docker run --rm -e 'GREETING=hi there' labkit/busybox echo hi" in result.text()
    assert "<code>docker run --rm" in result._repr_mimebundle_()["text/html"]
    proc = shell(result.equivalent)
    assert (proc.returncode, proc.stdout) == (0, "hi\n"), proc.stderr


def test_a_start_and_an_exec_show_theirs(lab):
    with lab.start("labkit/busybox", ["sleep", "60"], name="sleeper") as box:
        assert box.equivalent.startswith(f"docker run -d --name {box.name} labkit/busybox sleep 60")
        assert "equivalent: docker run -d" in box.text()
        done = box.exec("echo inside", user="root")
        assert done.equivalent == f"docker exec -u root {box.name} echo inside"
        proc = shell(done.equivalent)
        assert (proc.returncode, proc.stdout) == (0, "inside\n"), proc.stderr


def test_a_build_shows_its_docker_build_and_that_command_works(lab, docker_client, tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_STABLE", "0")
    (tmp_path / "Dockerfile").write_text("FROM labkit/busybox\nARG WHO\nRUN echo hello $WHO > /greeting\n")
    report = lab.build("app", context=tmp_path, build_args={"WHO": "you"}, salt=False)
    assert f"docker build -t {report.tag} --build-arg WHO=you {tmp_path}" in report.equivalent
    assert "equivalent: " in report.text() and "labkit.session" not in report.equivalent
    try:
        proc = shell(report.equivalent)
        assert proc.returncode == 0, proc.stderr
        out = lab.run(report.tag, ["cat", "/greeting"], check=True).stdout
        assert out == "hello you\n"
    finally:  # the command's own image has no session label: remove it by its tag
        try:
            docker_client.images.remove(report.tag)
        except Exception:
            pass
