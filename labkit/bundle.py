"""`labkit bundle export / import`: everything a classroom without network needs, in one folder:
the catalog images (each pinned by its image id, every platform the labs use), optionally the
Python wheels that install labkit offline (exactly those pinned in the repository's
requirements.lock, hash-checked, plus labkit's own wheel and a copy of the lock), and the
scanner databases that are available; a manifest with checksums. Import checks every checksum
and the free disk before it loads anything, and importing twice changes nothing."""
from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import docker

from .core import engine
from . import images
from .core.render import Renderable, human_bytes, seconds, table
from .core.errors import ImageMissing, InsufficientDisk, LabkitError
from .archive import save_image

MANIFEST = "bundle.json"
REPO = Path(__file__).resolve().parent.parent
LOCK = "requirements.lock"
# Run in the bundle folder on the classroom machine, inside the venv: no index, hashes checked.
INSTALL_WHEELS = (f"pip install --no-index --find-links wheels --require-hashes -r {LOCK} "
                  "&& pip install --no-index --find-links wheels --no-deps labkit")


class BundleCorrupt(LabkitError):
    default_hint = "Copy the bundle again from the machine that exported it (`labkit bundle export`)."


class LockMissing(LabkitError):
    default_hint = (f"Export from a clone of the workshop repository with labkit installed editable from it "
                    f"(`make setup` does that). If the clone lost the file, `git checkout {LOCK}` restores it "
                    f"(`make lock` writes a new one).")


def lock_file() -> Path:
    """The repository's requirements.lock: found next to the labkit package when labkit is installed
    editable from a clone (as `make setup` does)."""
    path = REPO / LOCK
    if not path.is_file():
        raise LockMissing(f"--wheels exports exactly the wheels pinned in {LOCK}, and {REPO} has none: "
                          "labkit is not installed editable from the workshop repository.")
    return path


def _locked_hashes(lock: Path) -> set[str]:
    return {"sha256:" + h for h in re.findall(r"--hash=sha256:([0-9a-f]{64})", lock.read_text())}


def _pip(args: list[str], what: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabkitError(f"pip could not collect {what}.",
                          "The Python package index must answer for --wheels; read pip's last lines above.",
                          details=proc.stderr[-600:])


def _wheels_preflight() -> Path:
    """The lock, once pip is known to be there: checked before the (long) image export."""
    lock = lock_file()
    if importlib.util.find_spec("pip") is None:
        raise LabkitError(f"--wheels downloads with pip, and {sys.executable} has none.",
                          f"Run `{sys.executable} -m ensurepip`, then export again.")
    return lock


def _export_wheels(out: Path, manifest: dict, report: BundleReport) -> None:
    """Exactly the wheels requirements.lock pins for this interpreter and platform (pip checks every
    hash), labkit's own wheel, and a copy of the lock; `INSTALL_WHEELS` installs them offline."""
    lock = _wheels_preflight()
    wheel_dir = out / "wheels"
    wheel_dir.mkdir(parents=True, exist_ok=True)
    _pip(["download", "-q", "--require-hashes", "--no-deps", "--only-binary", ":all:", "-r", str(lock),
          "-d", str(wheel_dir)], f"the wheels pinned in {LOCK}")
    for old in wheel_dir.glob("labkit-*.whl"):
        old.unlink()
    _pip(["wheel", "-q", "--no-deps", "-w", str(wheel_dir), str(REPO)], "labkit's own wheel")
    locked = _locked_hashes(lock)
    wheels = []
    for w in sorted(wheel_dir.glob("*.whl")):
        digest = _sha256(w)
        if digest not in locked and not w.name.startswith("labkit-"):
            w.unlink()  # left by an export from an older lock: the bundle holds exactly this lock's wheels
            continue
        wheels.append(w)
        manifest["files"].append({"kind": "wheel", "file": str(w.relative_to(out)), "size": w.stat().st_size,
                                  "sha256": digest})
    copy = out / LOCK
    shutil.copyfile(lock, copy)
    manifest["files"].append({"kind": "lock", "file": LOCK, "size": copy.stat().st_size, "sha256": _sha256(copy)})
    manifest["python_install"] = INSTALL_WHEELS
    target = f"Python {platform.python_version()} on {sys.platform} {platform.machine()}"
    report.rows.append((f"{len(wheels)} wheels", "python", sum(w.stat().st_size for w in wheels),
                        f"exported for {target}, the classroom's Python (install in the bundle folder: "
                        f"{INSTALL_WHEELS})"))
    report.rows.append((LOCK, "python lock", copy.stat().st_size, "copied"))


@dataclass
class BundleReport(Renderable):
    action: str
    rows: list[tuple[str, str, int, str]] = field(default_factory=list)  # (item, kind, bytes, what happened)
    seconds: float = 0.0

    def _render(self):
        return table(["item", "kind", "size", "result"], [(i, k, human_bytes(n), r) for i, k, n, r in self.rows],
                     title=f"labkit bundle {self.action} ({seconds(self.seconds)})")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _progress(total: int, desc: str):
    from tqdm.auto import tqdm
    from .core.render import stable
    # an explicit disable= wins over tqdm's own TQDM_DISABLE, so honour that here (CI, a classroom's preload)
    return tqdm(total=total, desc=desc, unit="item", disable=stable() or bool(os.environ.get("TQDM_DISABLE")))


def export(dest: str | Path, names: Iterable[str] | None = None, wheels: bool = False,
           client: docker.DockerClient | None = None) -> BundleReport:
    """Write the bundle into the folder `dest`."""
    start = time.monotonic()
    if wheels:
        _wheels_preflight()
    cli = client or engine.client()
    out = Path(dest)
    (out / "images").mkdir(parents=True, exist_ok=True)
    wanted = list(names or images.CATALOG)
    report = BundleReport("export")
    manifest: dict = {"format": 1, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                      "images": [], "files": []}
    bar = _progress(len(wanted) + 2, "export")
    for name in wanted:
        try:
            image = cli.images.get(name)
        except docker.errors.ImageNotFound:
            if name in images.CATALOG and images.CATALOG[name].optional:
                report.rows.append((name, "image", 0, "not present here (optional): left out"))
                bar.update(1)
                continue
            raise ImageMissing(f"{name} is not in the local image store, so it cannot be exported.") from None
        target = out / "images" / (re.sub(r"[^A-Za-z0-9_.-]+", "_", name) + ".tar")
        with open(target, "wb") as fh:
            save_image(name, fh, cli)
        manifest["images"].append({"name": name, "id": image.id, "platform": f"{image.attrs.get('Os')}/{image.attrs.get('Architecture')}",
                                   "file": str(target.relative_to(out)), "size": target.stat().st_size, "sha256": _sha256(target)})
        report.rows.append((name, f"image {manifest['images'][-1]['platform']}", target.stat().st_size, "exported"))
        bar.update(1)
    from .scan import trivy_cache
    trivy_db = trivy_cache() / "db"
    for path in sorted(trivy_db.glob("*")) if trivy_db.is_dir() else []:
        copy = out / "trivy" / "db" / path.name
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy)
        manifest["files"].append({"kind": "trivy-db", "file": str(copy.relative_to(out)), "size": copy.stat().st_size,
                                  "sha256": _sha256(copy)})
        report.rows.append((path.name, "trivy database", copy.stat().st_size, "exported"))
    if not trivy_db.is_dir():
        report.rows.append(("trivy database", "scanner data", 0, "none on this machine (trivy downloads it online)"))
    bar.update(1)
    if wheels:
        _export_wheels(out, manifest, report)
    bar.update(1)
    bar.close()
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    report.seconds = time.monotonic() - start
    return report


def verify_bundle(src: str | Path) -> dict:
    """The manifest, after checking that every file it lists is there, complete and unchanged."""
    root = Path(src)
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        raise BundleCorrupt(f"{root} has no readable {MANIFEST}: not a labkit bundle, or a broken copy.") from None
    for entry in manifest.get("images", []) + manifest.get("files", []):
        path = root / entry["file"]
        if not path.is_file():
            raise BundleCorrupt(f"{entry['file']} is missing from the bundle.")
        if path.stat().st_size != entry["size"]:
            raise BundleCorrupt(f"{entry['file']} is {path.stat().st_size} bytes, the manifest says {entry['size']}: "
                                "the copy is truncated.")
        if _sha256(path) != entry["sha256"]:
            raise BundleCorrupt(f"{entry['file']} does not match its checksum: the bundle is corrupted.")
    return manifest


def import_(src: str | Path, client: docker.DockerClient | None = None, manifest: dict | None = None) -> BundleReport:
    """Load the bundle into the engine (`client`, default: the one labkit finds). `manifest`: what
    verify_bundle returned for it earlier (a classroom checks the bundle once, not per learner)."""
    start = time.monotonic()
    root = Path(src)
    cli = client or engine.client()
    manifest = manifest or verify_bundle(root)  # everything checked before anything is loaded
    todo = []
    report = BundleReport("import")
    for entry in manifest["images"]:
        try:
            present = cli.images.get(entry["name"]).id == entry["id"]
        except docker.errors.ImageNotFound:
            present = False
        if present:
            report.rows.append((entry["name"], f"image {entry['platform']}", entry["size"], "already present"))
        else:
            todo.append(entry)
    needed = int(sum(e["size"] for e in todo) * 1.2)
    if needed:
        try:
            root_dir = cli.info().get("DockerRootDir", "/")
            free = shutil.disk_usage(root_dir if Path(root_dir).exists() else "/").free
        except OSError:
            free = None
        if free is not None and free < needed:
            raise InsufficientDisk(f"Importing needs about {human_bytes(needed)}; {human_bytes(free)} are free.")
    bar = _progress(len(todo), "import")
    for entry in todo:
        with open(root / entry["file"], "rb") as fh:
            loaded = cli.images.load(fh.read())
        ids = {img.id for img in loaded}
        if entry["id"] not in ids:
            raise BundleCorrupt(f"Loading {entry['file']} gave {sorted(ids)}, not {entry['id']}.")
        report.rows.append((entry["name"], f"image {entry['platform']}", entry["size"], "loaded"))
        bar.update(1)
    bar.close()
    from .scan import trivy_cache
    cache = trivy_cache()
    for entry in manifest.get("files", []):
        if entry["kind"] == "trivy-db":
            target = cache / Path(entry["file"]).relative_to("trivy")
            if target.exists() and _sha256(target) == entry["sha256"]:
                report.rows.append((target.name, "trivy database", entry["size"], "already present"))
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / entry["file"], target)
            report.rows.append((target.name, "trivy database", entry["size"], "installed"))
    wheels = [e for e in manifest.get("files", []) if e["kind"] == "wheel"]
    if wheels:
        how = (f"in {root}: {manifest['python_install']}" if "python_install" in manifest
               else f"pip install --no-index --find-links {root / 'wheels'} labkit[lab,test]")  # bundles before the lock
        report.rows.append((f"{len(wheels)} wheels", "python", sum(e["size"] for e in wheels), f"verified; install {how}"))
    report.seconds = time.monotonic() - start
    return report
