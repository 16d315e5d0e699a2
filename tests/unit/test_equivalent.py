"""Every call that stands for a CLI command carries its command line (`equivalent`) and shows it."""
from __future__ import annotations

import shlex

from labkit.builds import build_command
from labkit.containers import RunResult, exec_command, run_command
from labkit.core.render import Equivalent, command_line, stable_command

NAME = "lab-build-kit-3f9a1c-web"


def test_command_line_quotes_for_a_shell():
    assert command_line(["docker", "run", "--rm", "img", "sh", "-c", "echo 'hi there'"]) == \
        "docker run --rm img sh -c 'echo '\"'\"'hi there'\"'\"''"
    assert shlex.split(command_line(["a b", "c"])) == ["a b", "c"]


def test_stable_mode_replaces_session_ids_temporary_paths_and_ports(monkeypatch):
    line = f"docker build -t {NAME}:1 -f /tmp/labkit-build-x1y/Dockerfile -p 127.0.0.1:34567:80 /tmp/labkit-build-x1y/context"
    monkeypatch.setenv("LABKIT_STABLE", "0")
    assert stable_command(line) == line
    monkeypatch.setenv("LABKIT_STABLE", "1")
    assert stable_command(line) == ("docker build -t lab-<session>-web:1 -f /tmp/…/Dockerfile "
                                    "-p 127.0.0.1:<port>:80 /tmp/…/context")


def test_a_result_with_an_equivalent_shows_it_in_text_and_html(monkeypatch):
    monkeypatch.setenv("LABKIT_STABLE", "1")
    result = RunResult("echo hi", 0, "hi\n", "", 0.1, run_command("run --rm", "labkit/busybox", "echo hi"))
    assert result.text().splitlines()[-1] == "equivalent: docker run --rm labkit/busybox echo hi"
    bundle = result._repr_mimebundle_()
    assert "<code>docker run --rm labkit/busybox echo hi</code>" in bundle["text/html"]
    assert "equivalent" not in RunResult("x", 0, "", "", 0.1).text()
    assert "&lt;session&gt;" in Equivalent(f"docker rm {NAME}").html()


def test_run_command_translates_the_sdk_options():
    line = run_command("run -d", "nginx", None, name=NAME, environment={"A": "b c"},
                       volumes={"/h": {"bind": "/c", "mode": "ro"}}, ports={80: None, "53/udp": 5353},
                       cap_drop=["ALL"], cap_add=["NET_BIND_SERVICE"], privileged=True, user="1000",
                       pid_mode="host", network="lab-net", platform="linux/arm64", entrypoint=["sh", "-c"],
                       detach_keys=None, read_only=False)
    assert line == (f"docker run -d --name {NAME} -e 'A=b c' -v /h:/c:ro -p 127.0.0.1::80 -p 127.0.0.1:5353:53/udp "
                    "--cap-drop ALL --cap-add NET_BIND_SERVICE --privileged --user 1000 --pid host "
                    "--network lab-net --platform linux/arm64 --entrypoint sh nginx -c")


def test_run_command_names_options_it_cannot_translate():
    assert run_command("run --rm", "img", ["true"], nano_cpus=5) == "docker run --rm img true  # and SDK options nano_cpus=5"


def test_exec_command():
    assert exec_command("c1", "ls -l /", user="root", workdir="/w", environment={"A": "1"}) == \
        "docker exec -u root -w /w -e A=1 c1 ls -l /"


def test_build_command_is_the_cli_argv_without_plumbing():
    argv = ["/usr/libexec/docker", "build", "--progress=plain", "-t", NAME, "--label", "labkit.session=s",
            "--label", "team=a", "--secret", "id=token,src=/run/token", "--ssh", "default", "--no-cache", "ctx"]
    assert build_command(argv, ["DOCKER_BUILDKIT=1"], "unix:///var/run/docker.sock", {"labkit.session": "s"}) == \
        f"DOCKER_BUILDKIT=1 docker build -t {NAME} --label team=a --secret id=token,src=/run/token --ssh default --no-cache ctx"
    assert build_command(["docker", "build", "."], [], "tcp://10.0.0.2:2375", {}) == \
        "DOCKER_HOST=tcp://10.0.0.2:2375 docker build ."


def test_oras_push_command():
    from labkit.oras import push_command
    assert push_command("127.0.0.1:5000/sbom:v1", {"sbom.json": "application/vnd.cyclonedx+json"},
                        "application/vnd.example.sbom", {"a": "b"}) == \
        ("oras push --plain-http --artifact-type application/vnd.example.sbom --annotation a=b "
         "127.0.0.1:5000/sbom:v1 sbom.json:application/vnd.cyclonedx+json")
    assert push_command("127.0.0.1:5000/app:v1", {"sig": "text/plain"}, "application/x.sig", subject="sha256:ab") == \
        "oras attach --plain-http --artifact-type application/x.sig 127.0.0.1:5000/app@sha256:ab sig:text/plain"


def test_a_result_with_a_command_is_noted_even_when_nobody_shows_it(monkeypatch):
    from labkit.core import render

    class Result(render.Renderable):
        def __init__(self, equivalent=""):
            self.equivalent = equivalent

        def _render(self):
            return render.callout("info", "r", "")

    monkeypatch.setattr(render, "COMMANDS", [])
    Result("docker run --rm labkit/busybox true")
    Result("")  # no command: nothing noted
    Result("docker run --rm labkit/busybox true")
    Result("docker exec lab-welcome-abc123-web ps")
    assert render.COMMANDS == ["docker run --rm labkit/busybox true", "docker run --rm labkit/busybox true",
                               "docker exec lab-welcome-abc123-web ps"]
    monkeypatch.setenv("LABKIT_STABLE", "1")
    shown = render.Commands(render.COMMANDS).text().splitlines()
    assert shown == ["The commands behind this lab", "equivalent: docker run --rm labkit/busybox true",
                     "equivalent: docker exec lab-<session>-web ps"]


def test_stable_commands_hide_where_this_run_found_the_engine(monkeypatch):
    from labkit.core.render import stable_command
    monkeypatch.setenv("LABKIT_STABLE", "1")
    monkeypatch.setenv("LABKIT_DOCKER_HOST", "unix:///srv/ci-engine/docker.sock")
    shown = stable_command("DOCKER_BUILDKIT=1 DOCKER_HOST=unix:///srv/ci-engine/docker.sock docker run "
                           "-v /srv/ci-engine/docker.sock:/var/run/docker.sock --device /dev/vda:/dev/vda:rwm "
                           "--device /dev/zram0 x sh -c 'nsenter -t 4242 -m cat /proc/4242/cmdline /proc/1/status'")
    assert shown == ("DOCKER_BUILDKIT=1 docker run -v /var/run/docker.sock:/var/run/docker.sock --device … x "
                     "sh -c 'nsenter -t <pid> -m cat /proc/<pid>/cmdline /proc/1/status'")
    monkeypatch.delenv("LABKIT_STABLE")
    assert "4242" in stable_command("nsenter -t 4242")  # outside stable mode: the real, pasteable command
