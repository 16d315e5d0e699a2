from __future__ import annotations

import socket

import pytest

from labkit import Exec, Http, LogLine, TcpPort
from labkit.core.errors import CommandFailed, CommandTimeout, ImageMissing, ReadinessTimeout

BUSYBOX = "labkit/busybox:latest"


def test_run_captures_stdout_stderr_and_exit_code(lab):
    result = lab.run(BUSYBOX, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.stdout, result.stderr, result.exit_code) == ("out\n", "err\n", 3)
    assert result.duration > 0
    with pytest.raises(CommandFailed) as err:
        result.check()
    assert err.value.exit_code == 3 and "err" in str(err.value)


def test_run_removes_its_container(lab, docker_client):
    lab.run(BUSYBOX, "true")
    assert docker_client.containers.list(all=True, filters={"label": f"labkit.session={lab.session}"}) == []


def test_missing_image_hints_prepare(lab):
    with pytest.raises(ImageMissing) as err:
        lab.run("labkit/does-not-exist:1", "true")
    assert "labkit prepare" in str(err.value)


def test_run_timeout_kills_and_reports(lab):
    with pytest.raises(CommandTimeout):
        lab.run(BUSYBOX, ["sh", "-c", "echo started; sleep 30"], timeout=1)


def test_start_waits_for_log_line_and_execs(lab):
    with lab.start(BUSYBOX, ["sh", "-c", "sleep 0.3; echo ready now; sleep 60"], name="web",
                   wait=LogLine("ready now")) as c:
        assert c.name == lab.name("web")
        assert c.exec(["cat", "/etc/hostname"]).ok
        assert c.exec(["sh", "-c", "exit 4"]).exit_code == 4


def test_http_and_tcp_waits_on_loopback_only(lab, tmp_path):
    with lab.start(BUSYBOX, ["sh", "-c", "sleep 0.5; mkdir -p /www; echo hi > /www/index.html; httpd -f -p 8080 -h /www"],
                   ports={8080: None}, wait=Http(8080, "/index.html")) as c:
        TcpPort(8080).ready(c)
        host_port = c.host_port(8080)
        bindings = c.attrs()["NetworkSettings"]["Ports"]["8080/tcp"]
        assert all(b["HostIp"] == "127.0.0.1" for b in bindings)
        with socket.create_connection(("127.0.0.1", host_port), timeout=2):
            pass
        assert c.wait_for(TcpPort(8080), timeout=5) is c


def test_tcp_wait_is_not_fooled_by_the_proxy(lab):
    """docker-proxy accepts on the host port even when nothing listens in the container."""
    with lab.start(BUSYBOX, ["sleep", "60"], ports={9090: None}) as c:
        assert TcpPort(9090).ready(c) is False


def test_readiness_timeout_carries_last_logs(lab):
    with pytest.raises(ReadinessTimeout) as err:
        lab.start(BUSYBOX, ["sh", "-c", "echo booting; echo still booting; sleep 60"], wait=LogLine("never"),
                  timeout=1.5)
    assert "still booting" in str(err.value) and "Hint: " in str(err.value)


def test_container_that_exits_before_ready_fails_fast(lab):
    with pytest.raises(ReadinessTimeout) as err:
        lab.start(BUSYBOX, ["sh", "-c", "echo bad config >&2; exit 2"], wait=Exec(["true"]), timeout=20)
    assert "exited with code 2" in str(err.value) and "bad config" in str(err.value)


def test_copy_in_and_out(lab, tmp_path):
    src = tmp_path / "payload"
    src.mkdir()
    (src / "note.txt").write_text("hello from the host\n")
    with lab.start(BUSYBOX, ["sleep", "60"]) as c:
        c.copy_in(src, "/tmp")
        assert c.exec(["cat", "/tmp/payload/note.txt"]).stdout == "hello from the host\n"
        c.exec(["sh", "-c", "echo made inside > /tmp/out.txt"], check=True)
        out = c.copy_out("/tmp/out.txt", tmp_path)
        assert out.read_text() == "made inside\n"
