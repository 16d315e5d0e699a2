"""JSON Schema checks for the lab's configuration files (farm YAML, bundle.json, manifests):
every problem with the field it is in, so an error can name the field."""
from __future__ import annotations

from typing import Any, Mapping, Sequence


def field(path: Sequence[Any], brackets: bool = False) -> str:
    """farm.agents.0.vcpus, or with brackets (as kubectl says it) spec.containers[0].image."""
    out = ""
    for part in path:
        if brackets and isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def problems(schema: Mapping[str, Any], data: Any, brackets: bool = False) -> list[tuple[str, Any]]:
    """(field, jsonschema error) for every way `data` breaks `schema`, in field order."""
    import jsonschema

    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(data),
                    key=lambda e: [str(p) for p in e.absolute_path])
    return [(field(e.absolute_path, brackets), e) for e in errors]
