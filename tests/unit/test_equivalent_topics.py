"""The topic modules' command lines (scan, builders, multiarch, archive, networks and volumes): built
from what really ran, without a daemon."""
from __future__ import annotations

from pathlib import Path

from labkit.archive import save_command
from labkit.builders import buildah_command
from labkit.multiarch import EmulationCost, PlatformBuild, Said, index_command
from labkit.privileged import Escape
from labkit.resources import LabNetwork, LabVolume, network_command, shown, volume_command
from labkit.scan import tool_command

NAME = "lab-builders-3f9a1c-web"


def test_scan_tools_show_their_name_and_the_home_as_tilde():
    home = str(Path.home())
    assert tool_command(["/opt/venv/bin/trivy", "image", "--input", "/tmp/labkit-scan-x/image.tar", "--quiet",
                         "--cache-dir", f"{home}/.cache/labkit/trivy"]) == \
        "trivy image --input /tmp/labkit-scan-x/image.tar --quiet --cache-dir ~/.cache/labkit/trivy"
    assert tool_command(["/usr/bin/dive", "--source", "docker-archive", "a b.tar"]) == \
        "dive --source docker-archive 'a b.tar'"


def test_save_command():
    assert save_command("labkit/busybox:latest", Path("/tmp/x/image.tar")) == \
        "docker save -o /tmp/x/image.tar labkit/busybox:latest"
    assert save_command("img") == "docker save img"


def test_buildah_command_leaves_out_the_session_labels_only():
    argv = ["runuser", "-u", "labkit-lab", "--", "/usr/bin/buildah", "--storage-driver", "vfs", "bud",
            "--label", "labkit.session=s", "--label", "team=a", "-t", "web", "/tmp/ctx"]
    assert buildah_command(argv, {"labkit.session": "s"}) == \
        "runuser -u labkit-lab -- buildah --storage-driver vfs bud --label team=a -t web /tmp/ctx"


def test_multiarch_commands(monkeypatch):
    assert index_command("127.0.0.1:5000/hello:1", ["127.0.0.1:5000/hello:amd64", "127.0.0.1:5000/hello:arm64"]) == \
        ("docker buildx imagetools create -t 127.0.0.1:5000/hello:1 127.0.0.1:5000/hello:amd64 "
         "127.0.0.1:5000/hello:arm64")
    said = Said("aarch64")
    said.equivalent = "docker run --rm --platform linux/arm64 img"
    assert said == "aarch64" and str(said) == "aarch64" and repr(said) == "'aarch64'"
    monkeypatch.setenv("LABKIT_STABLE", "1")
    built = PlatformBuild("127.0.0.1:5000/hello:1", "sha256:" + "a" * 64, [("linux/arm64", "sha256:" + "b" * 64, 1.0)],
                          "docker buildx imagetools create -t 127.0.0.1:5000/hello:1 127.0.0.1:5000/hello:arm64")
    assert built.text().splitlines()[-1] == \
        "equivalent: docker buildx imagetools create -t 127.0.0.1:<port>/hello:1 127.0.0.1:<port>/hello:arm64"
    cost = EmulationCost("true", 1.0, 2.0, f"docker run -d --name {NAME} img sleep 600")
    assert cost.text().splitlines()[-1] == "equivalent: docker run -d --name lab-<session>-web img sleep 600"


def test_an_escape_shows_what_really_ran():
    escape = Escape("how", "nsenter -t PID ...", "", False,
                    "docker run -d --cap-add ALL --pid host labkit/busybox sleep 600")
    assert "equivalent: docker run -d --cap-add ALL --pid host labkit/busybox sleep 600" in escape.text()


def test_network_and_volume_commands():
    assert network_command(NAME, driver=None, internal=False) == f"docker network create {NAME}"
    assert network_command(NAME, driver="bridge", internal=True, options={"com.docker.network.bridge.name": "br1"},
                           ipam={"Config": [{"Subnet": "10.9.0.0/24", "Gateway": "10.9.0.1"}]}) == \
        (f"docker network create --driver bridge --internal --opt com.docker.network.bridge.name=br1 "
         f"--subnet 10.9.0.0/24 --gateway 10.9.0.1 {NAME}")
    assert network_command(NAME, check_duplicate=True).endswith("# and SDK options check_duplicate=True")
    assert volume_command(NAME) == f"docker volume create {NAME}"
    assert volume_command(NAME, "nfs", {"o": "addr=1.2.3.4"}) == f"docker volume create --driver nfs --opt o=addr=1.2.3.4 {NAME}"


def test_shown_sdk_objects_keep_their_attributes_and_equality(monkeypatch):
    from docker.models.networks import Network
    from docker.models.volumes import Volume
    monkeypatch.setenv("LABKIT_STABLE", "1")
    plain = Network(attrs={"Id": "n1", "Name": NAME, "Driver": "bridge", "Internal": True}, client=None, collection=None)
    net = shown(plain, f"docker network create --internal {NAME}")
    assert isinstance(net, (Network, LabNetwork)) and net.attrs is plain.attrs and net.name == NAME
    assert net == plain and plain == net and hash(net) == hash(Network(attrs={"Id": "n1"}))
    assert net.text().splitlines()[-1] == "equivalent: docker network create --internal lab-<session>-web"
    vol = shown(Volume(attrs={"Name": NAME, "Driver": "local"}), f"docker volume create {NAME}")
    assert isinstance(vol, LabVolume) and vol.id == NAME and vol == Volume(attrs={"Name": NAME})
    assert "<code>docker volume create lab-&lt;session&gt;-web</code>" in vol._repr_mimebundle_()["text/html"]
