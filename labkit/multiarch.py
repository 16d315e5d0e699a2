"""Notebook 08: images for several platforms. binfmt_misc + QEMU user emulation run foreign
binaries; per-platform BuildKit builds (buildx where present builds them in one go); a manifest
list assembled in the session registry; the cost of emulation measured as a ratio."""
from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from .core.render import Renderable, command_line, seconds, table, volatile
from .core.errors import LabSkipped, LabkitError

if TYPE_CHECKING:
    from .lab import Lab
    from .registry import Registry

BINFMT = Path("/proc/sys/fs/binfmt_misc")
QEMU_NAMES = {"arm64": "aarch64", "amd64": "x86_64", "arm": "arm", "ppc64le": "ppc64le", "s390x": "s390x",
              "riscv64": "riscv64"}
UNAME = {"amd64": "x86_64", "arm64": "aarch64"}


def emulators() -> list[tuple[str, str, str]]:
    """(name, interpreter, flags) of every QEMU handler registered with binfmt_misc."""
    out = []
    for entry in sorted(BINFMT.glob("qemu-*")) if BINFMT.is_dir() else []:
        try:
            text = entry.read_text()
        except OSError:
            continue
        fields = dict(line.split(" ", 1) for line in text.splitlines()[1:] if " " in line)
        if text.startswith("enabled"):
            out.append((entry.name, fields.get("interpreter", "?"), fields.get("flags:", fields.get("flags", "?"))))
    return out


def binfmt_table():
    rows = emulators()
    return table(["handler", "interpreter", "flags"], rows or [("none", "", "")],
                 title="binfmt_misc: foreign executables the kernel hands to an emulator")


def require(platform: str) -> None:
    """Skip the notebook, with the fix, when this host cannot run `platform` (e.g. linux/arm64)."""
    arch = platform.split("/")[1]
    native = UNAME.get(arch) == os.uname().machine
    if not native and not any(name == f"qemu-{QEMU_NAMES.get(arch, arch)}" for name, _, _ in emulators()):
        raise LabSkipped(f"This machine cannot run {platform} binaries: no QEMU handler is registered with binfmt_misc.",
                         "As root: apt-get install qemu-user-static, then run scripts/setup-host.sh (it registers "
                         "the handler); Docker Desktop has it built in.")


@dataclass
class PlatformBuild(Renderable):
    ref: str
    index_digest: str
    rows: list[tuple[str, str, float]]  # (platform, manifest digest, build seconds)
    equivalent: str = ""  # each docker build --platform, tag and push, then the manifest list

    def _render(self):
        return table(["platform", "manifest digest", "build time"],
                     [(p, volatile(d[:19] + "…"), seconds(t)) for p, d, t in self.rows],
                     title=f"{self.ref.split('/', 1)[1]}: one tag, {len(self.rows)} platforms (index "
                           f"{volatile(self.index_digest[:19] + '…')})")


def build_platforms(lab: "Lab", registry: "Registry", name: str, dockerfile: str,
                    bases: Mapping[str, str], files: Mapping[str, str | bytes] | None = None) -> PlatformBuild:
    """Build `dockerfile` once per platform (its `FROM ${BASE}` gets bases[platform]), push each
    as name-<arch>, then publish the manifest list `name`."""
    repo = name.split(":")[0]
    sources, rows, ran = [], [], []
    for platform, base in bases.items():
        require(platform)
        arch = platform.split("/")[1]
        report = lab.build(f"{repo}-{arch}", dockerfile, files=files, platform=platform, build_args={"BASE": base})
        pushed = registry.push(report.tag, f"{repo}:{arch}")
        sources.append(f"{repo}:{arch}")
        rows.append((platform, pushed.digest, report.duration))
        ran += [report.equivalent, pushed.equivalent]
    digest = registry.make_index(name, sources)  # through the registry's API, as this command does
    ran.append(index_command(registry.ref(name), [registry.ref(s) for s in sources]))
    return PlatformBuild(registry.ref(name), digest, rows, " && ".join(c for c in ran if c))


def index_command(ref: str, sources: list[str]) -> str:
    """The CLI command of Registry.make_index: a manifest list `ref` of single-platform images."""
    return command_line(["docker", "buildx", "imagetools", "create", "-t", ref, *sources])


class Said(str):
    """A command's output (a plain str) that also carries the command line that produced it."""

    equivalent: str = ""


def run_platform(lab: "Lab", ref: str, platform: str, command: list[str]) -> Said:
    """Pull the variant of `ref` for `platform` by its digest and run it; returns stdout (a str whose
    `equivalent` is `docker pull REF@DIGEST && docker run --rm --platform PLATFORM REF@DIGEST ...`)."""
    host, _, name = ref.partition("/")
    from .registry import INDEX_TYPES, RegistryClient, split_ref
    client = RegistryClient(host)
    index, _ = client.manifest(name)
    if index.get("mediaType") not in INDEX_TYPES and "manifests" not in index:
        raise LabkitError(f"{name} is a single-platform image, not a manifest list.", "Publish it with make_index().")
    os_, arch = platform.split("/")[:2]
    entry = next((m for m in index["manifests"] if m.get("platform", {}).get("architecture") == arch
                  and m.get("platform", {}).get("os") == os_), None)
    if entry is None:
        raise LabkitError(f"{name} has no {platform} variant.", "lab.platforms(ref) lists what it has.")
    pinned = f"{host}/{split_ref(name)[0]}@{entry['digest']}"
    lab.client.images.pull(pinned)
    lab.track_tag(pinned)
    result = lab.run(pinned, command, platform=platform).check()
    said = Said(result.stdout.strip())  # the output, as before; `said.equivalent` the commands
    said.equivalent = f"{command_line(['docker', 'pull', pinned])} && {result.equivalent}"
    return said


@dataclass
class EmulationCost(Renderable):
    workload: str
    native: float
    emulated: float
    equivalent: str = ""  # a long-running container of each image and the workload exec'd into it

    @property
    def ratio(self) -> float:
        return self.emulated / self.native

    def _render(self):
        return table(["run", "time (median of 3)"], [("native (amd64 busybox)", seconds(self.native)),
                                                     ("emulated (arm64 busybox under QEMU)", seconds(self.emulated)),
                                                     ("emulated / native", volatile(f"{self.ratio:.1f}x"))],
                     title=f"The same workload: {self.workload}")


def emulation_cost(lab: "Lab", native: str = "labkit/busybox:latest", foreign: str = "labkit/busybox:arm64",
                   workload: str = "head -c 20000000 /dev/zero | sha256sum", rounds: int = 3) -> EmulationCost:
    """Time the same shell workload inside a native and an emulated container (the container start
    is excluded: the workload runs in an exec into a running container)."""
    times: dict[str, list[float]] = {native: [], foreign: []}
    ran: list[str] = []
    for image, name in ((native, "emulation-native"), (foreign, "emulation-foreign")):
        with lab.start(image, ["sleep", "600"], name=name) as c:
            for _ in range(rounds):
                t = time.perf_counter()
                done = c.exec(["sh", "-c", workload], check=True)
                times[image].append(time.perf_counter() - t)
            ran += [c.equivalent, done.equivalent, f"docker rm -f {c.name}"]
    return EmulationCost(workload, statistics.median(times[native]), statistics.median(times[foreign]),
                         " && ".join(ran))


ELF_MACHINES = {3: "x86 (i386)", 40: "ARM (32-bit)", 62: "x86-64", 183: "AArch64 (arm64)", 243: "RISC-V"}


def elf_machine(binary: bytes) -> str:
    """The CPU an ELF executable is built for (its e_machine field): what binfmt_misc matches on."""
    if binary[:4] != b"\x7fELF":
        raise LabkitError("Not an ELF executable.", "Pass the bytes of a Linux program.")
    machine = int.from_bytes(binary[18:20], "little" if binary[5] == 1 else "big")
    return ELF_MACHINES.get(machine, f"machine {machine}")
