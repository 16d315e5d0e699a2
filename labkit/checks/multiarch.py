"""Checks and questions of notebook 08 (multi-arch images)."""
from __future__ import annotations

import docker

from ..core.render import table
from ..exercises import exercise
from ..multiarch import run_platform
from ..predictions import question
from ..registry import INDEX_TYPES, MANIFEST_TYPES

# the CI job's builds: tag -> (platform, base, version)
BUILDS = {"build-40": ("linux/amd64", "labkit/busybox:latest", "0.9"),
          "build-41": ("linux/amd64", "labkit/busybox:latest", "1.0"),
          "build-42": ("linux/arm64", "labkit/busybox:arm64", "1.0")}
# what the job published as tool:1: platform -> build (the arm64 entry is wrong on purpose)
PUBLISHED = {"linux/amd64": "build-41", "linux/arm64": "build-40"}
UNAME = {"amd64": "x86_64", "arm64": "aarch64"}

question("multiarch", "uname-foreign", "Inside a container of labkit/busybox:arm64, what does `uname -m` print?",
         ["the host's CPU: containers share the host's kernel",
          "aarch64, whichever machine runs it",
          "nothing: the container fails with 'exec format error'"], answer=1,
         why="uname is a system call: on an amd64 machine QEMU answers the emulated program's system calls itself "
             "and reports the CPU it emulates; on an arm64 machine the kernel is aarch64 anyway.")
question("multiarch", "missing-platform", "hello:1 lists linux/amd64 and linux/arm64. What does `docker pull "
         "--platform linux/s390x` of it do?",
         ["it pulls the amd64 entry, to run under emulation", "it fails: the list has no entry for linux/s390x",
          "it pulls the first entry of the list"], answer=1,
         why="A client picks among the entries a list has; a platform the list does not name is an error, not a "
             "fallback.")


def publish_tool(lab, registry, dockerfile: str):
    """The CI job of Exercise 1: three builds of `tool` (assets/multiarch/tool.Dockerfile) pushed as
    tool:build-N, then tool:1, a manifest list whose arm64 entry is an amd64 build (written by hand,
    as a wrong `docker manifest annotate` would)."""
    for tag, (platform, base, version) in BUILDS.items():
        report = lab.build(f"tool-{tag}", dockerfile, platform=platform, build_args={"BASE": base, "VERSION": version})
        registry.push(report.tag, f"tool:{tag}")
    entries = []
    for platform, tag in PUBLISHED.items():
        manifest, digest = registry.manifest(f"tool:{tag}")
        raw, _ = registry.get(f"/v2/tool/manifests/{digest}", MANIFEST_TYPES)
        os_, arch = platform.split("/")
        entries.append({"mediaType": manifest["mediaType"],
                        "digest": digest, "size": len(raw), "platform": {"architecture": arch, "os": os_}})
    registry.put_manifest("tool:1", {"schemaVersion": 2, "mediaType": INDEX_TYPES[1], "manifests": entries})
    return table(["tag", "what the CI job says it is"],
                 [(f"tool:{t}", f"tool {v} for {p}") for t, (p, _, v) in BUILDS.items()] +
                 [("tool:1", "manifest list of tool 1.0 for " + " and ".join(PUBLISHED))],
                 title="Published by the CI job")


@exercise("multiarch", "wrong-platform", "Find the wrong entry of tool:1 and publish a correct list", (
    "A manifest list only claims a platform for each entry; the image it points at has a platform of its own, "
    "in its config. Compare the two for every entry of tool:1, and for every build the job pushed.",
    "lab.platforms(registry.ref('tool:1')) lists the entries and their digests; lab.platforms(registry.ref("
    "f'tool@{digest}')) or registry.config(...) shows an image's own platform, and registry.tags('tool') the "
    "job's builds. registry.make_index(name, sources) publishes a list from single-platform images of the same "
    "repository, each entry's platform read from the image's config (as `docker buildx imagetools create` does).",
    "The arm64 entry points at build-40, an old amd64 build. registry.make_index('tool:1', ['tool:build-41', "
    "'tool:build-42']) (build-42 is tool 1.0 for arm64).",
))
def wrong_platform(lab, registry):
    if (why := registry.missing("tool", "1")) is not None:
        return False, why + " Run the cell that publishes tool:1 first."
    index, _ = registry.manifest("tool:1")
    if index.get("mediaType") not in INDEX_TYPES and "manifests" not in index:
        return False, "tool:1 is a single-platform image now: it must be a manifest list for linux/amd64 and linux/arm64."
    claimed = {}
    for entry in index.get("manifests", []):
        p = entry.get("platform", {})
        claimed[f"{p.get('os')}/{p.get('architecture')}"] = entry["digest"]
    if not {"linux/amd64", "linux/arm64"} <= set(claimed):
        return False, f"tool:1 names {', '.join(sorted(claimed)) or 'no platform'}: it must name linux/amd64 and linux/arm64."
    for platform, digest in sorted(claimed.items()):
        config = registry.config(f"tool@{digest}")
        own = f"{config.get('os')}/{config.get('architecture')}"
        if own != platform:
            return False, (f"tool:1 still hands {platform} machines an image that is not built for {platform}: "
                           "look at what each entry points to.")
    ref = registry.ref("tool:1")
    for platform in ("linux/amd64", "linux/arm64"):
        arch = platform.split("/")[1]
        said = run_platform(lab, ref, platform, [])
        if said != f"tool 1.0 on {UNAME[arch]}":
            return False, f"The {platform} variant of tool:1 prints {said!r}: tool:1 must be tool 1.0 on every platform."
    return True, "Each entry of tool:1 is an image built for its platform, and both print tool 1.0."


@exercise("multiarch", "targetarch", "Build for linux/arm64 and record the target platform with TARGETARCH", (
    "The CPU a build step runs on and the platform it builds for are different questions: which one can the "
    "Dockerfile ask the builder about, without running anything?",
    "BuildKit's automatic build arguments (TARGETARCH, TARGETPLATFORM, BUILDPLATFORM: declare them with ARG after "
    "FROM). docker build chooses the platform with --platform and the base with --build-arg BASE=...",
    "Add `ARG TARGETARCH` and `RUN echo $TARGETARCH > /etc/target-arch` after FROM, then !docker build --platform "
    "linux/arm64 --build-arg BASE=labkit/busybox:arm64 -t {lab.image('targetarch')} {targetarch_dir}",
))
def targetarch(lab):
    name = lab.image("targetarch")
    try:
        image = lab.client.images.get(name)
    except docker.errors.ImageNotFound:
        return False, f"No image {name} in this session yet (build it with that name)."
    arch = image.attrs.get("Architecture")
    if arch != "arm64":
        return False, f"Found {name}, but it is built for linux/{arch}, not linux/arm64 (and on an arm64 base)."
    said = lab.run(name, ["cat", "/etc/target-arch"], platform="linux/arm64")
    if said.exit_code != 0:
        return False, f"Found {name} for linux/arm64, but it has no /etc/target-arch ({said.stderr.strip()})."
    text = said.stdout.strip()
    if text != "arm64":
        return False, f"/etc/target-arch says {text!r}: that is what the (emulated) CPU calls itself, not the platform."
    return True, "/etc/target-arch says arm64: the build knew its target platform without asking the CPU."
