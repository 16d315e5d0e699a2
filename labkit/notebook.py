"""The workshop agenda: every notebook with what it does and the talk it comes from (notebook 00
shows it; a test keeps it in step with the notebooks and the README)."""
from __future__ import annotations

# The workshop agenda: (number, notebook stem, title, the talk it comes from).
AGENDA = [
    ("00", "welcome", "Welcome: how the labs work", "Keynote: automate the toil, make releases boring"),
    ("01", "container-universe", "The container universe: images, layers, what `docker run` does",
     "The Container Universe"),
    ("02", "buildkit", "BuildKit: parallel stages, cache mounts, build secrets, SSH forwarding",
     "The Container Universe"),
    ("03", "build-cache", "The build cache: cache keys, ordering, warming a cache from a registry",
     "The Container Universe"),
    ("04", "troubleshooting", "Troubleshooting a scratch container; chroot, namespaces and cgroups by hand",
     "Modern containers only have a binary"),
    ("05", "privileged", "Privileged containers, the docker socket and nsenter: how containers reach the host",
     "Only trusted users should use your docker daemon"),
    ("06", "rootless", "Rootless Docker: the uid mapping, notebook 05's attacks failing, the costs measured",
     "Only trusted users should use your docker daemon"),
    ("07", "scanning", "Image scanning: inventory, SBOM, advisory matching, secrets, a CI gate, blind spots",
     "Security issues will be discovered"),
    ("08", "multiarch", "Multi-arch images: binfmt_misc and QEMU, two platforms under one tag, emulation cost",
     "Build images for different platforms using the kernel and QEMU"),
    ("09", "contexts", "Docker contexts (one CLI, two engines) and CLI plugins written as shell scripts",
     "Docker Context: connect to another docker daemon"),
    ("10", "oras", "ORAS: any file as an OCI artifact, tags vs digests, content addressing, referrers",
     "ORAS - OCI Registry as storage"),
    ("11", "builders", "Image builders (classic, BuildKit, buildah daemonless and rootless) and reproducible builds",
     "Tools for building Docker images"),
    ("12", "testcontainers", "Integration tests with Testcontainers, cleanup without Ryuk, the wormhole pattern",
     "Real integration tests with containers"),
    ("13", "k3s", "K3s in a container like k3d: kubeconfig, deploy, scale, watch, debug a distroless pod",
     "K3s lightweight K8s; K3D: K3s in docker"),
    ("14", "drift", "Infrastructure drift: Ansible configures a server, testinfra verifies it, drift found and fixed",
     "Infrastructure as Code with Pulumi and Ansible"),
    ("15", "build-farm", "Shared CI build farms: a real build queue at limits 1, 2, 4, farm config as code, a model",
     "100x Jenkins"),
    ("16", "cnab", "CNAB bundles: bundle.json, an invocation image and a spec-following runner",
     "Cloud Native Application Bundles"),
    ("17", "capstone", "Capstone: one app through the whole pipeline, from a secret-safe build to a CNAB install",
     "All the talks, in one pipeline"),
]


def agenda():
    from .core.render import table
    return table(["#", "notebook", "what you will do", "talk"],
                 [(n, f"{n}-{stem}.ipynb", title, talk) for n, stem, title, talk in AGENDA], title="Agenda")


WORDS_PER_MINUTE = 200  # reading speed of technical prose with code in it


def pace(notebook: dict) -> tuple[int, int]:
    """(class minutes the notebook's header promises, minutes to read its markdown): the README's
    agenda and paths are built from these, so a test keeps them in step."""
    import math
    import re
    cells = notebook.get("cells", [])
    header = "".join(cells[0].get("source", "")) if cells else ""
    m = re.search(r"\*\*Time:\*\* about (\d+) minutes", header)
    words = sum(len("".join(c.get("source", "")).split()) for c in cells if c.get("cell_type") == "markdown")
    return (int(m.group(1)) if m else 0), math.ceil(words / WORDS_PER_MINUTE)
