"""Checks of notebook 08 (multi-arch images)."""
from __future__ import annotations

from ..core.errors import LabkitError
from ..exercises import exercise
from ..multiarch import run_platform


@exercise("multiarch", "multi-platform", "Publish greeter:1 for amd64 and arm64",
          "multiarch.build_platforms(lab, registry, 'greeter:1', dockerfile, bases) builds one image per "
          "platform and publishes the manifest list; the Dockerfile's CMD prints `hello from $(uname -m)`.")
def multi_platform(lab, registry):
    ref = registry.ref("greeter:1")
    try:
        platforms = {m["platform"]["architecture"] for m in registry.manifest("greeter:1")[0].get("manifests", [])}
    except LabkitError:
        return False, "The registry has no greeter:1 yet."
    if not {"amd64", "arm64"} <= platforms:
        return False, f"greeter:1 must be a manifest list naming amd64 and arm64 (it names: {sorted(platforms) or 'none'})."
    said = {arch: run_platform(lab, ref, f"linux/{arch}", []) for arch in ("amd64", "arm64")}
    want = {"amd64": "hello from x86_64", "arm64": "hello from aarch64"}
    wrong = [f"{arch} printed {said[arch]!r}" for arch in want if said[arch] != want[arch]]
    if wrong:
        return False, "Run without arguments, each variant should greet with its machine: " + "; ".join(wrong) + "."
    return True, "docker pulled the right variant for each platform: x86_64 and aarch64 both greet."


@exercise("multiarch", "targetarch", "Record the target platform with TARGETARCH",
          "BuildKit defines ARG TARGETARCH for every build (declare it after FROM to use it): "
          "RUN echo $TARGETARCH > /etc/target-arch")
def targetarch(lab, dockerfile: str):
    lab.build("targetarch", dockerfile, platform="linux/arm64", build_args={"BASE": "labkit/busybox:arm64"})
    image = lab.client.images.get(lab.name("targetarch"))
    if image.attrs.get("Architecture") != "arm64":
        return False, "The image was not built for linux/arm64: keep `FROM ${BASE}`."
    said = lab.run(lab.name("targetarch"), ["cat", "/etc/target-arch"], platform="linux/arm64").stdout.strip()
    if said != "arm64":
        return False, f"/etc/target-arch says {said!r}: that is what the (emulated) CPU calls itself, not the platform."
    return True, "/etc/target-arch says arm64: the build knew its target platform without asking the CPU."
