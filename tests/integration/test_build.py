"""Real BuildKit builds: reports, secrets, ssh, errors, and the session's own build cache."""
from __future__ import annotations

import hashlib
import os
import subprocess

import docker
import pytest

import labkit
from labkit import archive
from labkit.core import engine
from labkit.hosttools import host_binary_files
from labkit.buildcache import records as build_cache_records

BASE = "FROM labkit/busybox\n"


def session_containers(client, session):
    return client.containers.list(all=True, filters={"label": f"labkit.session={session}"})


def test_buildkit_report_has_stages_cache_hits_and_labels(lab, docker_client):
    df = BASE.replace("\n", " AS one\n") + "RUN sleep 1 && echo 1 > /one\n" + \
        "FROM labkit/busybox AS two\nRUN sleep 1 && echo 2 > /two\n" + \
        "FROM labkit/busybox\nCOPY --from=one /one /one\nCOPY --from=two /two /two\n"
    cold = lab.build("multi", df, no_cache=True)
    assert cold.builder == "BuildKit" and cold.overlap("> /one", "> /two") > 0.5
    assert {s.stage for s in cold.ran} == {"one", "two", "stage-2"}
    warm = lab.build("multi", df)
    assert warm.ran == [] and len(warm.cached) == 4
    labels = docker_client.images.get(lab.name("multi")).labels
    assert labels["labkit.session"] == lab.session and labels["labkit.lab"] == "test"


def test_classic_builder_runs_every_stage_in_order(lab, docker_client):
    before = {i.id for i in docker_client.images.list(all=True)}
    df = "FROM labkit/busybox AS unused\nRUN echo never needed\nFROM labkit/busybox\nRUN echo final > /f\n"
    classic = lab.build("classic", df, builder="classic", no_cache=True)
    buildkit = lab.build("bk", df, no_cache=True)
    assert classic.builder == "classic" and any("never needed" in s.instruction for s in classic.ran)
    assert not any("never needed" in s.instruction for s in buildkit.ran)
    assert not any(s.instruction.startswith("LABEL labkit.") for s in classic.steps)
    lab.cleanup()  # the unused stage's image carries no label, yet goes too
    after = {i.id for i in docker_client.images.list(all=True)}
    assert after <= before
    docker_client.images.get("labkit/busybox:latest")  # the base of both stages is never touched


def test_secret_mount_does_not_leak_but_copy_and_arg_do(lab):
    token = "tok-" + os.urandom(8).hex()
    lab.build("copy", BASE + "COPY t /t\nRUN wc -c /t && rm /t\n", files={"t": token})
    lab.build("arg", BASE + "ARG T\nRUN echo ${#T}\n", build_args={"T": token})
    lab.build("secret", BASE + "RUN --mount=type=secret,id=t sha256sum /run/secrets/t | cut -c1-12 > /id\n",
              secrets={"t": token})
    copy = archive.search_layers(lab.name("copy"), token)
    assert copy.leaked and copy.hits[0][0] == "layer #1"
    assert archive.search_layers(lab.name("arg"), token).hits[0][0].startswith("history")
    clean = archive.search_layers(lab.name("secret"), token)
    assert not clean.leaked and clean.layers_searched == 2
    assert lab.run(lab.name("secret"), "cat /id").stdout.strip() == hashlib.sha256(token.encode()).hexdigest()[:12]


def test_ssh_forwarding_reaches_the_lab_agent_and_cleanup_stops_it(lab):
    agent = lab.ssh_agent()
    df = BASE + "RUN --mount=type=bind,source=t,target=/t --mount=type=ssh /t/ld.so --library-path /t /t/ssh-add -l > /said\n"
    lab.build("ssh", df, files=host_binary_files("ssh-add", prefix="t"), ssh=agent)
    assert lab.run(lab.name("ssh"), "cat /said").stdout.strip() == agent.fingerprint
    lab.cleanup()
    assert not os.path.exists(agent.socket)
    with pytest.raises(ProcessLookupError):
        os.kill(agent.pid, 0)


@pytest.mark.parametrize("dockerfile, kwargs, error, text", [
    (BASE + "RUN echo partial output && exit 3\n", {}, labkit.BuildFailed, "partial output"),
    (BASE + "RUNN nothing\n", {}, labkit.BuildFailed, "unknown instruction"),
    ("FROM labkit/never-prepared\nRUN true\n", {}, labkit.ImageMissing, "labkit/never-prepared"),
    ("FROM labkit/never-prepared\nRUN true\n", {"builder": "classic"}, labkit.ImageMissing, "labkit/never-prepared"),
    (BASE + "RUN --mount=type=secret,id=t cat /run/secrets/t\n", {"secret_files": {"t": "/nonexistent"}},
     labkit.LabkitError, "does not exist"),
])
def test_bad_input_gives_a_clear_error_and_leaves_nothing_running(lab, docker_client, dockerfile, kwargs, error, text):
    with pytest.raises(error) as info:
        lab.build("bad", dockerfile, **kwargs)
    assert text in str(info.value) and str(info.value).splitlines()[-1].startswith("Hint: ")
    assert session_containers(docker_client, lab.session) == []


def test_wipe_removes_only_this_sessions_images_and_cache(lab, docker_client):
    marker = os.urandom(4).hex()
    foreign_df = f"FROM labkit/busybox\nRUN echo foreign {marker} > /f\n"
    cli = engine.require_buildkit()
    subprocess.run([cli.path, "build", "-q", "-t", f"foreign-{marker}", "-"], input=foreign_df, text=True,
                   env=cli.env(), check=True, capture_output=True)
    try:
        before = {r["ID"] for r in build_cache_records(docker_client)}
        lab.build("mine", f"FROM labkit/busybox\nRUN echo mine {marker} > /m\n")
        report = lab.wipe_builds()
        after = {r["ID"] for r in build_cache_records(docker_client)}
        # the image, and the session's own copy of its base (labkit.bases.salted_base)
        assert report.removed["images"] == 2 and report.removed["build cache records"] >= 1
        assert before <= after  # every record that existed before this session's build is still there
        docker_client.images.get(f"foreign-{marker}")
        with pytest.raises(docker.errors.ImageNotFound):
            docker_client.images.get(lab.name("mine"))
    finally:
        docker_client.images.remove(f"foreign-{marker}", force=True)


def test_each_session_builds_on_its_own_copy_of_the_base(lab, docker_client):
    """A session never gets build cache another session made (with salt=False it does, as plain
    `docker build` would); the copy of the base is the session's, shown under the real base's name."""
    marker = os.urandom(4).hex()
    dockerfile = f"FROM labkit/busybox\nWORKDIR /w-{marker}\nRUN echo {marker} > f\n"
    other = labkit.Lab("test")
    try:
        theirs = other.build("same", dockerfile)
        mine = lab.build("same", dockerfile)
        again = lab.build("same", dockerfile)
        assert len(theirs.ran) == len(mine.ran) == 2 and not mine.cached  # WORKDIR too: nothing shared
        assert len(again.cached) == 2 and not again.ran
        assert mine.step("FROM").instruction == "FROM docker.io/labkit/busybox" and "base-labkit" not in mine.log
        copy = docker_client.images.get(lab.name("base-labkit-busybox"))
        base = docker_client.images.get("labkit/busybox:latest")
        assert copy.id != base.id and len(copy.attrs["RootFS"]["Layers"]) == 1
        assert copy.attrs["Size"] == base.attrs["Size"]  # the same files
        shared_first = other.build("shared", dockerfile, salt=False)
        shared_second = lab.build("shared", dockerfile, salt=False)
        assert len(shared_first.ran) == 2 and len(shared_second.cached) == 2 and not shared_second.ran
    finally:
        other.cleanup()
    lab.cleanup()
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(lab.name("base-labkit-busybox"))
    docker_client.images.get("labkit/busybox:latest")
