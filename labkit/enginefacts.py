"""What differs between Docker 20.10 and current Docker, read from the engine in front of the
learner: the BuildKit default, buildx, the `docker save` layout, the containerd image store. Notebooks
show `lab.engine_facts(...)` where prose depends on it; `prose_problems` keeps the prose true on
every engine (tests run it against old and new engines' facts)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from .core.engine import client, find_buildkit_cli
from .core.render import Renderable, table


@dataclass(frozen=True)
class EngineFacts(Renderable):
    version: str          # the engine's own version string
    buildx: bool          # the docker CLI has the buildx plugin
    containerd_store: bool  # images live in containerd's store (a snapshotter, not a graph driver)
    topics: tuple[str, ...] = ()  # rows to show; all when empty

    @property
    def major(self) -> int:
        m = re.match(r"(\d+)", self.version)
        return int(m.group(1)) if m else 0

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(topic, Docker 20.10, current Docker, on this engine)."""
        m = self.major
        rows = [
            ("buildkit", "BuildKit is opt-in: DOCKER_BUILDKIT=1 or `docker buildx build`",
             "BuildKit is the default builder (since 23.0)",
             "default" if m >= 23 else "opt-in (DOCKER_BUILDKIT=1)"),
            ("buildx", "a separate plugin, often missing (Debian's docker.io 20.10 has none)",
             "shipped with Docker's packages; `docker build` is buildx",
             "present" if self.buildx else "absent: labkit uses DOCKER_BUILDKIT=1"),
            ("save", "legacy layout: manifest.json, one folder per layer with layer.tar",
             "OCI layout (index.json, blobs/sha256) plus the legacy manifest.json (since 25.0)",
             "OCI layout + manifest.json" if m >= 25 else "legacy layout"),
            ("image-store", "graph driver (overlay2): one platform per tag",
             "containerd image store: default for new installs since 29.0; holds multi-platform images",
             "containerd" if self.containerd_store else "graph driver"),
            ("cache-export", "inline cache only (final stage)",
             "inline; mode=max registry cache needs a docker-container builder or the containerd store",
             "mode=max with the default builder" if self.buildx and self.containerd_store else
             "mode=max after `docker buildx create --use`" if self.buildx else "inline only (no buildx)"),
        ]
        return [r for r in rows if not self.topics or r[0] in self.topics]

    def _render(self):
        return table(["", "Docker 20.10", "current Docker", f"this engine ({self.version})"], self.rows(),
                     title="Which applies here")


def facts(*topics: str) -> EngineFacts:
    """Read the engine's version and image store, and whether the CLI has buildx."""
    dc = client()
    info = dc.info()
    status = " ".join(str(v) for pair in info.get("DriverStatus") or [] for v in pair)
    cli = find_buildkit_cli()
    return EngineFacts(version=info.get("ServerVersion", "?"), buildx=bool(cli and cli.mode == "buildx"),
                       containerd_store="io.containerd.snapshotter" in status, topics=tuple(topics))


# --- prose that must hold on every engine ---------------------------------------------------

Rule = tuple[str, Callable[[str, EngineFacts], bool], str]
VERSIONED = re.compile(r"20\.10|2[3-9]\.\d|\b2[3-9]\b|\bolder\b|current Docker|since Docker|before 23", re.I)

RULES: list[Rule] = [
    ("claims this engine has no buildx",
     lambda s, f: f.buildx and bool(re.search(r"(this|the) (engine|machine|client|docker) has no buildx", s, re.I)),
     "say 'if your docker has no buildx plugin' or show lab.engine_facts('buildx')"),
    ("names a Docker version as the engine's",
     lambda s, f: bool(re.search(r"BuildKit \(Docker \d", s)), "read the version: lab.engine_facts()"),
    ("says which builder is the default without a version",
     lambda s, f: bool(re.search(r"is the default builder|default builder is|(classic builder|BuildKit) by default", s))
     and not VERSIONED.search(s),
     "say since which version (BuildKit is the default since 23.0)"),
    ("presents one docker save layout as the layout without a version",
     lambda s, f: bool(re.search(r"docker save", s)) and bool(re.search(r"\blayout\b", s)) and not VERSIONED.search(s)
     and not ("OCI" in s and "legacy" in s), "name both layouts, or since which version"),
    ("says `# syntax=` is needed without a version",
     lambda s, f: "# syntax=" in s and bool(re.search(r"\b(needs?|needed|required|must)\b", s))
     and not re.search(r"no longer|not needed|no `# syntax=` line needed|without it|\bolder\b|20\.10", s, re.I),
     "it is no longer needed on current Docker"),
]


def sentences(markdown: str) -> list[str]:
    text = re.sub(r"```.*?```", " ", markdown, flags=re.S)  # code blocks are commands, not claims
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n{2,}", text) if s.strip()]


def prose_problems(markdown: str, engine: EngineFacts) -> list[str]:
    """Sentences that would be false or unqualified on `engine`."""
    return [f"{what}: {s[:160]!r} ({fix})" for s in sentences(markdown) for what, bad, fix in RULES if bad(s, engine)]
