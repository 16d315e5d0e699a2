"""Image builds: BuildKit through the BuildKit-capable CLI the engine module found (secrets and
--ssh need the CLI's session), or the classic builder through the Engine API for comparison.
Every build returns a `BuildReport` (labkit.buildlog)."""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import bases, buildcache
from .buildlog import BuildFailed, BuildReport, Step, parse_classic, parse_plain, timed
from .core import engine
from .core.errors import ImageMissing, LabkitError
from .core.render import command_line
from .core.session import Session

_ANSI = re.compile(r"\x1b\[[0-9;]*m")

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


def build_command(argv: Sequence[str], env: Sequence[str], daemon_url: str, hidden: Mapping[str, str]) -> str:
    """The command line a build stands for: the argv labkit ran with `docker` for the CLI's path, the
    environment it set in front, minus plumbing left out for readability (--progress=plain and the
    session's `--label` pairs)."""
    drop, args, skip = {f"{k}={v}" for k, v in hidden.items()}, ["docker"], False
    for arg, nxt in zip(argv[1:], [*argv[2:], ""]):
        if skip or arg == "--progress=plain" or (arg == "--label" and nxt in drop):
            skip = arg == "--label"
            continue
        args.append(arg)
    env = [*env, *([f"DOCKER_HOST={daemon_url}"] if daemon_url != engine.DEFAULT_SOCKET else [])]
    return command_line([*env, *args])


def prepare_context(tmp: Path, dockerfile: str | None, context: str | os.PathLike | None,
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


def build(session: Session, tag: str, dockerfile: str | None = None, context: str | os.PathLike | None = None, *,
          files: Mapping[str, str | bytes] | None = None, build_args: Mapping[str, str] | None = None,
          target: str | None = None, secrets: Mapping[str, str] | None = None,
          secret_files: Mapping[str, str | os.PathLike] | None = None, ssh: Any = None,
          cache_from: Sequence[str] = (), inline_cache: bool = False, no_cache: bool = False,
          platform: str | None = None, labels: Mapping[str, str] | None = None,
          builder: str = "buildkit", salt: bool = True) -> BuildReport:
    """Build `dockerfile` (a string) or the context's Dockerfile, tag it session.name(tag) and label it
    with the session. `secrets` are values, `secret_files` paths: both reach RUN --mount=type=secret
    only, never the context. `ssh` is an SSHAgent from lab.ssh_agent() or "default" ($SSH_AUTH_SOCK).
    `salt`: small bases (labkit/busybox) come from the session's own copy, so this session never
    gets build cache that another session (or an earlier run) made; salt=False shares the engine's cache."""
    name = session.name(tag)
    all_labels = {**(labels or {}), **session.labels}
    with buildcache.noting(session):
        return _build(session, name, tag, dockerfile, context, files, build_args, target, secrets, secret_files,
                      ssh, cache_from, inline_cache, no_cache, platform, all_labels, builder, salt)


def _build(session: Session, name: str, tag: str, dockerfile: str | None, context: str | os.PathLike | None,
           files: Mapping[str, str | bytes] | None, build_args: Mapping[str, str] | None, target: str | None,
           secrets: Mapping[str, str] | None, secret_files: Mapping[str, str | os.PathLike] | None,
           ssh: Any, cache_from: Sequence[str], inline_cache: bool, no_cache: bool,
           platform: str | None, all_labels: Mapping[str, str], builder: str, salt: bool) -> BuildReport:
    with tempfile.TemporaryDirectory(prefix="labkit-build-") as tmpdir:
        tmp = Path(tmpdir)
        ctx, df = prepare_context(tmp, dockerfile, context, files)
        aliases: dict[str, str] = {}
        if salt:
            text = (df or ctx / "Dockerfile").read_text()
            salted, aliases = bases.salt_dockerfile(session, text)
            if aliases:
                df = tmp / "Dockerfile"
                df.write_text(salted)
        if builder == "classic":
            if secrets or secret_files or ssh or cache_from or inline_cache or platform:
                raise LabkitError("The classic builder has no secrets, ssh, cache import or platforms.",
                                  "Build with BuildKit (the default) for those options.")
            report = _build_classic(session, name, ctx, df, build_args or {}, target, no_cache, all_labels, aliases)
            argv = ["docker", "build", "-t", name, *(["-f", str(df)] if df else []),
                    *[a for k, v in (build_args or {}).items() for a in ("--build-arg", f"{k}={v}")],
                    *(["--target", target] if target else []), *(["--no-cache"] if no_cache else []), str(ctx)]
            report.equivalent = build_command(argv, ["DOCKER_BUILDKIT=0"], session.daemon_url, {})
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
            report = _build_cli(session, name, cmd, {**cli.env(), "DOCKER_HOST": session.daemon_url}, aliases)
            report.equivalent = build_command(cmd, [] if cli.mode == "buildx" else ["DOCKER_BUILDKIT=1"],
                                              session.daemon_url, session.labels)
    return report


def _build_cli(session: Session, name: str, cmd: list[str], env: dict[str, str], aliases: Mapping[str, str]) -> BuildReport:
    start = time.monotonic()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
        assert proc.stdout is not None
        lines = [(t, bases.unsalt(line, aliases)) for t, line in timed(proc.stdout, start)]
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
    return _report(session, name, "BuildKit", duration, steps, log, context)


def _build_classic(session: Session, name: str, ctx: Path, df: Path | None, build_args: Mapping[str, str],
                   target: str | None, no_cache: bool, labels: Mapping[str, str],
                   aliases: Mapping[str, str]) -> BuildReport:
    start = time.monotonic()
    lines: list[tuple[float, str]] = []
    error = ""
    stream = session.client.api.build(path=str(ctx), dockerfile=str(df) if df else None, tag=name, labels=dict(labels),
                                  buildargs=dict(build_args), target=target, nocache=no_cache, rm=True,
                                  forcerm=True, decode=True)
    created, keep = [], True  # keep: the current step's image is not ours (a FROM's base, a cache hit)
    for chunk in stream:
        for line in bases.unsalt(_ANSI.sub("", chunk.get("stream", "")), aliases).splitlines():
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
        session.tracker.image(image_id)
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
    return _report(session, name, "classic", duration, steps, log, "")


def _report(session: Session, name: str, builder: str, duration: float, steps: list[Step], log: str,
            context: str) -> BuildReport:
    image = session.client.images.get(name)
    return BuildReport(name, builder, image.id, image.attrs.get("Size", 0),
                       len(image.attrs["RootFS"].get("Layers", [])), duration, steps, log, context)


def _base_missing(steps: list[Step]) -> ImageMissing:
    # The engine's own message names the registry it tried; the FROM line says enough.
    bases = [s.instruction for s in steps if s.instruction.upper().startswith("FROM")] or \
        [s.instruction for s in steps if "load metadata for" in s.instruction]
    return ImageMissing("A base image of this Dockerfile is not in the local image store (and no registry "
                        "can be reached).", details="\n".join(bases[-1:]))


