"""Checks of notebook 08 (multi-arch images)."""
from __future__ import annotations

import docker

from ..core.errors import LabkitError
from ..exercises import exercise
from ..multiarch import run_platform


@exercise("multiarch", "multi-platform", "Publish greeter:1 for amd64 and arm64", (
    "Section 2 published hello:1 for two platforms: what must change for greeter:1 is only what its "
    "containers print when run without arguments.",
    "multiarch.build_platforms(lab, registry, TAG, dockerfile, bases) in section 2's cell; the Dockerfile's CMD "
    "decides what a container prints, and `uname -m` names the CPU it runs on.",
    "multiarch.build_platforms(lab, registry, 'greeter:1', 'ARG BASE\\nFROM ${BASE}\\nCMD [\"sh\", \"-c\", "
    "\"echo hello from $(uname -m)\"]\\n', bases)",
))
def multi_platform(lab, registry):
    ref = registry.ref("greeter:1")
    try:
        platforms = {m["platform"]["architecture"] for m in registry.manifest("greeter:1")[0].get("manifests", [])}
    except LabkitError:
        return False, f"The session registry has no greeter:1 yet (it holds: {', '.join(_repositories(registry)) or 'nothing'})."
    if not {"amd64", "arm64"} <= platforms:
        return False, f"greeter:1 must be a manifest list naming amd64 and arm64 (it names: {sorted(platforms) or 'none'})."
    said = {arch: run_platform(lab, ref, f"linux/{arch}", []) for arch in ("amd64", "arm64")}
    want = {"amd64": "hello from x86_64", "arm64": "hello from aarch64"}
    wrong = [f"{arch} printed {said[arch]!r}" for arch in want if said[arch] != want[arch]]
    if wrong:
        return False, "Run without arguments, each variant should greet with its machine: " + "; ".join(wrong) + "."
    return True, "docker pulled the right variant for each platform: x86_64 and aarch64 both greet."


def _repositories(registry) -> list[str]:
    try:
        return list(registry.catalog())
    except Exception:  # only to say what is there: a registry that cannot list is not the learner's fault
        return []


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
