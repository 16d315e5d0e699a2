"""Image builds: BuildKit through the BuildKit-capable CLI the engine module found (secrets and
--ssh need the CLI's session), or the classic builder through the Engine API for comparison.
Every build returns a `BuildReport`: its steps with stage, cache hit and timing, as a table and
as a timeline."""
from __future__ import annotations

import contextlib
import datetime
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Mapping, Sequence

import docker

from . import engine
from .display import Chart, Renderable, Stack, human_bytes, seconds, short_name, stable, table, volatile
from .errors import CommandFailed, ImageMissing, LabkitError
from .locks import open_locked

if TYPE_CHECKING:
    from .lab import Lab

TAIL = 12  # output lines of a failing step shown in the error
_VERTEX = re.compile(r"^#(\d+) (.*)$")
_HEADER = re.compile(r"^\[(?:(?P<stage>[^\]\s]+) )?(?P<index>\d+/\d+)\] (?P<instr>.*)$|^\[internal\] (?P<internal>.*)$")
_DONE = re.compile(r"^DONE (\d+(?:\.\d+)?)s$")
_OUTPUT = re.compile(r"^\d+\.\d+ (.*)$")
# "transferring context: 26B done", "... 25.17MB 0.3s", and on a brand-new engine "... done" or nothing at all
_CONTEXT = re.compile(r"^transferring context:\s*(?P<size>\d+(?:\.\d+)?[kMG]?B)?")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class BuildFailed(CommandFailed):
    """A build step failed: the message names the step, the details hold its last output lines."""

    def __init__(self, command: Sequence[str], exit_code: int, log: str, step: "Step | None" = None) -> None:
        super().__init__(command, exit_code, "", log, hint="Fix the failing step shown above, then build again.")
        self.step = step
        error = [ln for ln in log.splitlines() if re.match(r"(error|failed to solve|ERROR)", ln.strip("# 0123456789"))]
        if step is not None:
            self.message = f"The build failed at [{step.stage} {step.index}] {step.instruction}"
            self.details = "\n".join(step.output[-TAIL:] + ([step.error] if step.error else []))
        else:  # a Dockerfile the frontend could not even parse
            self.message = "The build failed before any step ran (is the Dockerfile valid?)"
            self.details = "\n".join(error[-3:]) or "\n".join(log.strip().splitlines()[-TAIL:])


@dataclass
class Step:
    """One vertex of the build graph as the build reported it."""

    id: int
    stage: str  # the stage name (e.g. "deps", "stage-1"); "internal" for context/metadata loads
    index: str  # "2/4" within the stage
    instruction: str
    cached: bool = False
    start: float = 0.0  # seconds since the build started
    end: float = 0.0
    output: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def status(self) -> str:
        if self.error:
            return "error"
        if self.instruction.upper().startswith("FROM"):
            return "base"  # resolving the base image: neither a cache hit nor work
        return "cached" if self.cached else "ran"


@dataclass
class BuildReport(Renderable):
    tag: str
    builder: str  # "BuildKit" or "classic"
    image_id: str
    size: int
    layers: int
    duration: float
    steps: list[Step]
    log: str
    context_size: str = ""

    @property
    def ran(self) -> list[Step]:
        """Steps of the Dockerfile that really executed (not cached, not internal)."""
        return [s for s in self.steps if s.stage != "internal" and s.status in ("ran", "error")]

    @property
    def cached(self) -> list[Step]:
        return [s for s in self.steps if s.stage != "internal" and s.status == "cached"]

    def step(self, text: str) -> Step:
        """The (last) step whose instruction contains `text`."""
        found = [s for s in self.steps if text in s.instruction]
        if not found:
            raise LabkitError(f"No step of {short_name(self.tag)} matches {text!r}.",
                              "report.steps lists every step with its instruction.")
        return found[-1]

    def overlap(self, a: str, b: str) -> float:
        """Seconds during which the steps matching `a` and `b` ran at the same time."""
        sa, sb = self.step(a), self.step(b)
        return max(0.0, min(sa.end, sb.end) - max(sa.start, sb.start))

    def table(self):
        steps = sorted((s for s in self.steps if s.stage != "internal"),
                       key=lambda s: (s.stage, int(s.index.split("/")[0] or 0)))
        rows = [(s.stage, s.index, s.instruction[:70], s.status, seconds(s.duration) if s.status == "ran" else "")
                for s in steps]
        return table(["stage", "step", "instruction", "result", "time"], rows, status_column="result",
                     title=f"{self.builder} build of {short_name(self.tag)}: {len(self.ran)} ran, "
                           f"{len(self.cached)} cached")

    def summary(self):
        return table(["image", "builder", "id", "layers", "size", "build time", "context sent"],
                     [(short_name(self.tag), self.builder, volatile(self.image_id[7:19]), self.layers,
                       human_bytes(self.size), seconds(self.duration), self.context_size or "?")],
                     title="Build result")

    def timeline(self) -> Chart:
        """One bar per step from its start to its end: parallel stages overlap, cache hits are grey."""
        steps = sorted((s for s in self.steps if s.stage != "internal"), key=lambda s: (s.start, s.id))
        width = max(self.duration, 0.1) / 150  # a cache hit takes no time: draw it as a thin mark
        colours = {"ran": "#0969da", "cached": "#8c959f", "base": "#d0d7de", "error": "#cf222e"}
        return Chart(f"{self.builder} build of {short_name(self.tag)}: each step from start to end (s)",
                     [(f"[{s.stage} {s.index}] {s.instruction[:34]}", s.start, max(s.end, s.start + width))
                      for s in steps], unit="s",
                     colours=[colours[s.status] for s in steps],
                     legend={"ran": colours["ran"], "cached": colours["cached"]})

    def _render(self):
        blocks = [self.summary(), self.table()]
        if not stable():  # timings differ on every run: no picture in CI's compared output
            blocks.append(self.timeline())
        return Stack(blocks)


# --- parsing the builders' progress -------------------------------------------------------------

def parse_plain(lines: Iterable[tuple[float, str]]) -> tuple[list[Step], str]:
    """Steps from BuildKit's `--progress=plain` output, each line with the time it arrived.
    The plain printer shows a vertex only when it is its turn, so a step's end is when its DONE
    line arrived and its start is that minus the duration BuildKit measured."""
    steps: dict[int, Step] = {}
    context = ""
    for t, line in lines:
        m = _VERTEX.match(line.rstrip())
        if not m:
            continue
        vid, rest = int(m.group(1)), m.group(2)
        step = steps.get(vid)
        if step is None:
            h = _HEADER.match(rest)
            if h and h.group("internal") is not None:
                step = Step(vid, "internal", "", h.group("internal"))
            elif h:
                step = Step(vid, h.group("stage") or "stage-0", h.group("index"), h.group("instr"))
            else:  # "exporting to image" and similar
                step = Step(vid, "internal", "", rest)
            step.start = step.end = t
            steps[vid] = step
            continue
        done = _DONE.match(rest)
        if done:
            step.end = t
            step.start = max(0.0, t - float(done.group(1)))
        elif rest == "CACHED":
            step.cached, step.start, step.end = True, t, t
        elif rest.startswith("ERROR"):
            step.error, step.end = rest, t
        elif (o := _OUTPUT.match(rest)) is not None:
            step.output.append(o.group(1))
        elif (c := _CONTEXT.match(rest)) is not None and step.instruction == "load build context":
            context = c.group("size") or context
    return sorted(steps.values(), key=lambda s: s.id), context


def parse_classic(lines: Iterable[tuple[float, str]]) -> list[Step]:
    """Steps from the classic builder's stream ("Step 2/5 : RUN ...", " ---> Using cache")."""
    steps: list[Step] = []
    stage = -1
    for t, line in lines:
        m = re.match(r"^Step (\d+/\d+) : (.*)$", line)
        if m:
            if steps:
                steps[-1].end = t
            if m.group(2).upper().startswith("FROM"):
                stage += 1
            steps.append(Step(len(steps) + 1, f"stage-{stage}", m.group(1), m.group(2), start=t, end=t))
        elif steps and line.strip() == "---> Using cache":
            steps[-1].cached = True
        elif steps and line.strip() and not line.startswith((" ---> ", "Removing intermediate", "Successfully ")):
            steps[-1].output.append(line)
    return steps


def _timed(stream: Iterable[str], start: float) -> Iterator[tuple[float, str]]:
    for line in stream:
        yield time.monotonic() - start, line.rstrip("\n")


# --- building ---------------------------------------------------------------------------------------

def _write_secrets(tmp: Path, secrets: Mapping[str, str], secret_files: Mapping[str, str | os.PathLike]) -> list[str]:
    """--secret arguments; values go to 0600 files in a directory outside the build context."""
    args = []
    for sid, path in secret_files.items():
        if not Path(path).is_file():
            raise LabkitError(f"The secret file {path} for secret {sid!r} does not exist.",
                              "Create the file first, or pass the value with secrets={...} instead.")
        args += ["--secret", f"id={sid},src={Path(path).resolve()}"]
    for sid, value in secrets.items():
        f = tmp / f"secret-{len(args)}"
        f.touch(mode=0o600)
        f.write_text(value)
        args += ["--secret", f"id={sid},src={f}"]
    return args


def _prepare_context(tmp: Path, dockerfile: str | None, context: str | os.PathLike | None,
                     files: Mapping[str, str | bytes] | None) -> tuple[Path, Path | None]:
    if context is not None and files:
        raise LabkitError("Pass either a context directory or files={...}, not both.",
                          "Put the extra files into the context directory.")
    if context is not None and not Path(context).is_dir():
        raise LabkitError(f"The build context {context} is not a directory.", "Pass the folder holding your files.")
    ctx = Path(context) if context is not None else tmp / "context"
    ctx.mkdir(exist_ok=True)
    for rel, content in (files or {}).items():
        target = (ctx / rel).resolve()
        if not target.is_relative_to(ctx.resolve()):
            raise LabkitError(f"files[{rel!r}] points outside the build context.", "Use a relative path.")
        target.parent.mkdir(parents=True, exist_ok=True)
        data = content if isinstance(content, bytes) else content.encode()
        target.write_bytes(data)
        if data[:4] == b"\x7fELF" or data[:2] == b"#!":  # programs and scripts stay runnable
            target.chmod(0o755)
    df = None
    if dockerfile is not None:
        df = tmp / "Dockerfile"
        df.write_text(dockerfile)
    elif not (ctx / "Dockerfile").is_file():
        raise LabkitError(f"No Dockerfile: neither a dockerfile string nor {ctx}/Dockerfile.",
                          "Pass the Dockerfile text as the second argument of lab.build().")
    return ctx, df


def build(lab: "Lab", tag: str, dockerfile: str | None = None, context: str | os.PathLike | None = None, *,
          files: Mapping[str, str | bytes] | None = None, build_args: Mapping[str, str] | None = None,
          target: str | None = None, secrets: Mapping[str, str] | None = None,
          secret_files: Mapping[str, str | os.PathLike] | None = None, ssh: "str | SSHAgent | None" = None,
          cache_from: Sequence[str] = (), inline_cache: bool = False, no_cache: bool = False,
          platform: str | None = None, labels: Mapping[str, str] | None = None,
          builder: str = "buildkit", salt: bool = True) -> BuildReport:
    """Build `dockerfile` (a string) or the context's Dockerfile, tag it lab.name(tag) and label it
    with the session. `secrets` are values, `secret_files` paths: both reach RUN --mount=type=secret
    only, never the context. `ssh` is an SSHAgent from lab.ssh_agent() or "default" ($SSH_AUTH_SOCK).
    `salt`: small bases (labkit/busybox) come from the session's own copy, so this session never
    gets build cache that another session (or an earlier run) made; salt=False shares the engine's cache."""
    name = lab.name(tag)
    all_labels = {**(labels or {}), **lab.labels}
    gate = _gate(lab.daemon_url)
    gate.acquire()
    try:
        since = time.time()
        report = _build(lab, name, tag, dockerfile, context, files, build_args, target, secrets, secret_files, ssh,
                        cache_from, inline_cache, no_cache, platform, all_labels, builder, salt)
    except BaseException:
        gate.release()
        raise
    # noted in the background (a /system/df call costs ~10 ms); lab joins it before any prune
    note = threading.Thread(target=_remember_cache, args=(lab, since, time.time(), gate), daemon=True)
    note.start()
    lab._cache_notes.append(note)
    return report


def _build(lab: "Lab", name: str, tag: str, dockerfile: str | None, context: str | os.PathLike | None,
           files: Mapping[str, str | bytes] | None, build_args: Mapping[str, str] | None, target: str | None,
           secrets: Mapping[str, str] | None, secret_files: Mapping[str, str | os.PathLike] | None,
           ssh: "str | SSHAgent | None", cache_from: Sequence[str], inline_cache: bool, no_cache: bool,
           platform: str | None, all_labels: Mapping[str, str], builder: str, salt: bool) -> BuildReport:
    with tempfile.TemporaryDirectory(prefix="labkit-build-") as tmpdir:
        tmp = Path(tmpdir)
        ctx, df = _prepare_context(tmp, dockerfile, context, files)
        aliases: dict[str, str] = {}
        if salt:
            text = (df or ctx / "Dockerfile").read_text()
            salted, aliases = salt_dockerfile(lab, text)
            if aliases:
                df = tmp / "Dockerfile"
                df.write_text(salted)
        if builder == "classic":
            if secrets or secret_files or ssh or cache_from or inline_cache or platform:
                raise LabkitError("The classic builder has no secrets, ssh, cache import or platforms.",
                                  "Build with BuildKit (the default) for those options.")
            report = _build_classic(lab, name, ctx, df, build_args or {}, target, no_cache, all_labels, aliases)
        else:
            cli = engine.require_buildkit()
            cmd = [cli.path, "build", "--progress=plain", "-t", name]
            if df is not None:
                cmd += ["-f", str(df)]
            for k, v in all_labels.items():
                cmd += ["--label", f"{k}={v}"]
            args = dict(build_args or {})
            if inline_cache:
                args["BUILDKIT_INLINE_CACHE"] = "1"
            for k, v in args.items():
                cmd += ["--build-arg", f"{k}={v}"]
            cmd += _write_secrets(tmp, secrets or {}, secret_files or {})
            if ssh is not None:
                cmd += ["--ssh", ssh if isinstance(ssh, str) else f"default={ssh.socket}"]
            for ref in cache_from:
                cmd += ["--cache-from", ref]
            if no_cache:
                cmd.append("--no-cache")
            if target:
                cmd += ["--target", target]
            if platform:
                cmd += ["--platform", platform]
            cmd.append(str(ctx))
            report = _build_cli(lab, name, cmd, {**cli.env(), "DOCKER_HOST": lab.daemon_url}, aliases)
    return report


def _build_cli(lab: "Lab", name: str, cmd: list[str], env: dict[str, str], aliases: Mapping[str, str]) -> BuildReport:
    start = time.monotonic()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
        assert proc.stdout is not None
        lines = [(t, unsalt(line, aliases)) for t, line in _timed(proc.stdout, start)]
    duration = time.monotonic() - start
    log = "\n".join(line for _, line in lines)
    steps, context = parse_plain(lines)
    if proc.returncode != 0:
        if re.search(r"pull access denied|manifest unknown|failed to resolve source metadata|"
                     r"failed to do request|no such host|not found$", log, re.MULTILINE) and \
                not any(s.error for s in steps if s.stage != "internal" and s.instruction.split()[0] != "FROM"):
            raise _base_missing(steps)
        failed = next((s for s in steps if s.error and s.stage != "internal"), None)
        raise BuildFailed(cmd, proc.returncode, log, failed)
    return _report(lab, name, "BuildKit", duration, steps, log, context)


def _build_classic(lab: "Lab", name: str, ctx: Path, df: Path | None, build_args: Mapping[str, str],
                   target: str | None, no_cache: bool, labels: Mapping[str, str],
                   aliases: Mapping[str, str]) -> BuildReport:
    start = time.monotonic()
    lines: list[tuple[float, str]] = []
    error = ""
    stream = lab.client.api.build(path=str(ctx), dockerfile=str(df) if df else None, tag=name, labels=dict(labels),
                                  buildargs=dict(build_args), target=target, nocache=no_cache, rm=True,
                                  forcerm=True, decode=True)
    created, keep = [], True  # keep: the current step's image is not ours (a FROM's base, a cache hit)
    for chunk in stream:
        for line in unsalt(_ANSI.sub("", chunk.get("stream", "")), aliases).splitlines():
            lines.append((time.monotonic() - start, line))
            if line.startswith("Step "):
                keep = bool(re.match(r"^Step \d+/\d+ : FROM ", line, re.IGNORECASE))
            elif line.strip() == "---> Using cache":
                keep = True
            elif (m := re.match(r"^ ---> ([0-9a-f]{12})$", line)) and not keep:
                created.append(m.group(1))
        error = error or _ANSI.sub("", chunk.get("error", ""))
    # Each step the classic builder ran committed an image without the session's labels (only the
    # last step gets them); stages the final image does not use stay behind as dangling images.
    for image_id in created:
        lab.track_image(image_id)
    duration = time.monotonic() - start
    steps = [s for s in parse_classic(lines) if not s.instruction.startswith("LABEL labkit.")]  # labkit's labels
    if steps:
        steps[-1].end = duration
    log = "\n".join(line for _, line in lines)
    if error:
        if steps:
            steps[-1].error = error.strip()
        if steps and steps[-1].instruction.upper().startswith("FROM"):
            raise _base_missing(steps)
        raise BuildFailed(["docker", "build (classic)"], 1, log + "\n" + error, steps[-1] if steps else None)
    return _report(lab, name, "classic", duration, steps, log, "")


def _report(lab: "Lab", name: str, builder: str, duration: float, steps: list[Step], log: str,
            context: str) -> BuildReport:
    image = lab.client.images.get(name)
    return BuildReport(name, builder, image.id, image.attrs.get("Size", 0),
                       len(image.attrs["RootFS"].get("Layers", [])), duration, steps, log, context)


def _base_missing(steps: list[Step]) -> ImageMissing:
    # The engine's own message names the registry it tried; the FROM line says enough.
    bases = [s.instruction for s in steps if s.instruction.upper().startswith("FROM")] or \
        [s.instruction for s in steps if "load metadata for" in s.instruction]
    return ImageMissing("A base image of this Dockerfile is not in the local image store (and no registry "
                        "can be reached).", details="\n".join(bases[-1:]))


# --- a session's own base images ----------------------------------------------------------------
# BuildKit's cache keys come from contents (a base's layer digests, instructions, file checksums),
# never from who built what: on a shared or warm engine, a step another session (or yesterday's run)
# built is a cache hit for you. A session's builds start from its own copy of each small base: the
# same files, one layer as before, but a layer digest of its own (the tar carries the session in a
# pax header), so its cache is its own and a lab prints the same on a new engine and a warm one.
_NATIVE = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}
SALT_MAX_BYTES = 20_000_000  # copying a base costs about 0.1 s per MB: bigger bases are shared
_FROM = re.compile(r"^(\s*FROM\s+(?:--platform=\S+\s+)?)(\S+)(.*)$", re.IGNORECASE | re.MULTILINE)


def salt_dockerfile(lab: "Lab", dockerfile: str) -> tuple[str, dict[str, str]]:
    """The Dockerfile with each small local base replaced by the session's copy, and {copy: base}."""
    aliases: dict[str, str] = {}

    def swap(m: re.Match) -> str:
        ref = m.group(2)
        if "$" in ref or ref.lower() == "scratch" or ref.startswith(f"lab-{lab.session}-"):
            return m.group(0)
        copy = salted_base(lab, ref)
        if copy is None:
            return m.group(0)
        aliases[copy] = ref
        return m.group(1) + copy + m.group(3)

    return _FROM.sub(swap, dockerfile), aliases


def session_base(lab: "Lab", ref: str) -> str:
    """The name of the session's own copy of the base `ref` (whether made yet or not)."""
    repo, tag = _repo(ref), ref[len(_repo(ref)) + 1:]
    return lab.name("base-" + re.sub(r"[^a-z0-9]+", "-", repo.lower()).strip("-")) + (f":{tag}" if tag else "")


def salted_base(lab: "Lab", ref: str) -> str | None:
    """The session's copy of a local single-layer image `ref` (made on first use), or None when the
    image is missing (the build then reports it), large, or has more than one layer."""
    copy, tag = session_base(lab, ref), ref[len(_repo(ref)) + 1:]
    try:
        lab.client.images.get(copy)
        return copy
    except docker.errors.ImageNotFound:
        pass
    try:
        image = lab.client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None
    if len(image.attrs["RootFS"].get("Layers", [])) != 1 or image.attrs.get("Size", 0) > SALT_MAX_BYTES:
        return None
    if image.attrs.get("Architecture") != _NATIVE.get(os.uname().machine, os.uname().machine):
        return None  # `docker import` would record this machine's architecture instead of the image's
    saved = tarfile.open(fileobj=io.BytesIO(b"".join(image.save())))
    manifest = json.load(saved.extractfile("manifest.json"))  # type: ignore[arg-type]
    layer = tarfile.open(fileobj=saved.extractfile(manifest[0]["Layers"][0]))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT,
                      pax_headers={"LABKIT.session": lab.session}) as salted:
        for member in layer.getmembers():
            salted.addfile(member, layer.extractfile(member) if member.isfile() else None)
    config = image.attrs.get("Config") or {}
    changes = [f"LABEL {json.dumps(k)}={json.dumps(v)}" for k, v in {**lab.labels, "labkit.copy-of": ref}.items()]
    changes += [f"ENV {e}" for e in config.get("Env") or []]
    if config.get("Cmd"):
        changes.append(f"CMD {json.dumps(config['Cmd'])}")
    if config.get("WorkingDir"):
        changes.append(f"WORKDIR {config['WorkingDir']}")
    lab.client.api.import_image_from_data(out.getvalue(), repository=_repo(copy), tag=tag or "latest",
                                          changes=changes)
    return copy


def unsalt(text: str, aliases: Mapping[str, str]) -> str:
    """Builder output as if the Dockerfile's own bases had been used."""
    for copy, ref in aliases.items():
        copy_repo, ref_repo = _repo(copy), _repo(ref)
        first = ref_repo.split("/")[0]
        qualified = ref_repo if "/" in ref_repo and ("." in first or ":" in first) else \
            f"docker.io/{ref_repo}" if "/" in ref_repo else f"docker.io/library/{ref_repo}"
        text = text.replace(f"docker.io/library/{copy_repo}", qualified).replace(copy_repo, ref_repo)
    return text


def _repo(ref: str) -> str:
    """The name without its tag (a registry's port is not a tag)."""
    return ref.rsplit(":", 1)[0] if ":" in ref.rsplit("/", 1)[-1] else ref


# --- the session's build cache ------------------------------------------------------------------
# Build cache records carry no labels. labkit notes the records created while each of its builds
# ran and prunes only those. So that no other session's record falls into that window, builds of
# different processes on one engine take turns (a file lock per engine, held from the build's start
# until its records are noted); builds of one process (notebook 15's queue) still run side by side.

class _Gate:
    def __init__(self, name: str) -> None:
        self.name, self.users, self.fd, self.lock = name, 0, -1, threading.Lock()
        self.turn = threading.Lock()  # one thread of this process waits for the file lock at a time

    def acquire(self) -> None:
        with self.turn:
            with self.lock:
                if self.users:
                    self.users += 1
                    return
            fd = open_locked(self.name)  # released by the kernel too when this process dies
            with self.lock:
                self.fd, self.users = fd, self.users + 1

    def release(self) -> None:
        with self.lock:
            self.users -= 1
            if self.users == 0 and self.fd >= 0:
                os.close(self.fd)  # closing drops the lock
                self.fd = -1


_GATES: dict[str, _Gate] = {}


@contextlib.contextmanager
def exclusive(lab: "Lab") -> Iterator[None]:
    """Builds of other sessions on this engine wait until the block ends (this session's own builds
    still run, side by side): a measurement that needs the machine to itself."""
    gate = _gate(lab.daemon_url)
    gate.acquire()
    try:
        yield
    finally:
        gate.release()


def _gate(daemon_url: str) -> _Gate:
    return _GATES.setdefault(daemon_url, _Gate(f"build-gate {daemon_url}"))


def _remember_cache(lab: "Lab", since: float, until: float, gate: _Gate) -> None:
    """Note the records created between `since` and `until` (wall clock; the daemon stamps CreatedAt)."""
    from .cleanup import build_cache_records
    try:
        new = [r["ID"] for r in build_cache_records(lab.client)
               if since - 0.05 <= _timestamp(r.get("CreatedAt", "")) <= until + 0.05]
        if new:
            with open(lab.state / "build-cache", "a") as fh:
                fh.writelines(f"{i}\n" for i in sorted(new))
    finally:
        gate.release()


def _timestamp(rfc3339: str) -> float:
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", rfc3339)
    if not m:
        return 0.0
    base = datetime.datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    return base.timestamp() + float(m.group(2) or 0)


def prune_cache(cli: docker.DockerClient, ids: Iterable[str]) -> int:
    """Prune the given build cache records (a parent goes once its children are gone); bytes reclaimed."""
    pending, reclaimed = set(ids), 0
    while pending:
        removed = set()
        for rid in sorted(pending):
            try:
                result = cli.api.prune_builds(filters={"id": rid})  # the API takes one value per filter
            except docker.errors.APIError:
                continue
            if result.get("CachesDeleted"):
                removed |= set(result["CachesDeleted"])
                reclaimed += result.get("SpaceReclaimed", 0)
        if not removed & pending:
            break
        pending -= removed
    return reclaimed


# --- ssh agent forwarding -----------------------------------------------------------------------

@dataclass
class SSHAgent(Renderable):
    """A throwaway ssh-agent the lab started, holding one fresh key."""

    socket: str
    pid: int
    public_key: str
    fingerprint: str

    def _render(self):
        return table(["ssh-agent", "value"], [("socket", volatile(self.socket)), ("pid", volatile(self.pid)),
                                             ("key", volatile(self.fingerprint, "ED25519 (fresh for this session)"))],
                     title="A lab-owned ssh-agent")


def ssh_agent(lab: "Lab") -> SSHAgent:
    for tool in ("ssh-agent", "ssh-keygen", "ssh-add"):
        if not shutil.which(tool):
            raise LabkitError(f"{tool} is not installed.", "apt-get install openssh-client")
    home = lab.track_path(Path(tempfile.mkdtemp(prefix=f"labkit-ssh-{lab.session}-")))
    sock = home / "agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    lab.track_process(proc)
    key = home / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"labkit {lab.session}", "-f", str(key)],
                   check=True, capture_output=True)
    deadline = time.monotonic() + 5
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    env = dict(os.environ, SSH_AUTH_SOCK=str(sock))
    subprocess.run(["ssh-add", "-q", str(key)], check=True, capture_output=True, env=env)
    fp = subprocess.run(["ssh-keygen", "-lf", str(key)], check=True, capture_output=True, text=True).stdout.strip()
    return SSHAgent(str(sock), proc.pid, (home / "id_ed25519.pub").read_text().strip(), fp)



def host_binary_files(program: str, prefix: str = "tools") -> dict[str, bytes]:
    """A host program with the shared libraries `ldd` lists and the dynamic loader, as
    build-context files: run it in any image as `/<prefix>/ld.so --library-path /<prefix> /<prefix>/<program>`.
    (The same trick makes a debugging tool usable inside a distroless image.)"""
    path = shutil.which(program)
    if not path:
        raise LabkitError(f"{program} is not installed on this machine.", f"Install the package that ships {program}.")
    out = _ldd(path)
    files = {f"{prefix}/{program}": Path(path).read_bytes()}
    for line in out.splitlines():
        lib = line.split("=>")[-1].split("(")[0].strip()
        if lib.startswith("/"):
            name = "ld.so" if "ld-linux" in lib else Path(lib).name
            files[f"{prefix}/{name}"] = Path(lib).read_bytes()
    return files


def host_binary_command(program: str, prefix: str = "/tools") -> list[str]:
    """How to start the copy host_binary_files() made: through the copied loader, unless static."""
    path = shutil.which(program) or program
    if "ld-linux" not in _ldd(path):
        return [f"{prefix}/{program}"]
    return [f"{prefix}/ld.so", "--library-path", prefix, f"{prefix}/{program}"]


def _ldd(path: str) -> str:
    return subprocess.run(["ldd", path], capture_output=True, text=True).stdout
