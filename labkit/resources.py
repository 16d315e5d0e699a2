"""Networks and volumes as lab.network() and lab.volume() return them: the docker SDK's own objects
(every attribute and method as before), which also show themselves with their `docker network create`
/ `docker volume create` command line."""
from __future__ import annotations

from typing import Any, Mapping

from docker.models.networks import Network
from docker.models.volumes import Volume

from .core.render import Renderable, command_line, short_name, table

# The `docker network create` flag of each SDK option (the SDK has no CLI translation).
_NETWORK_VALUE = dict(driver="--driver", scope="--scope")
_NETWORK_FLAG = dict(internal="--internal", enable_ipv6="--ipv6", attachable="--attachable", ingress="--ingress")


def _options(args: list[str], opts: Mapping[str, Any] | None) -> list[str]:
    return args + [a for k, v in (opts or {}).items() for a in ("--opt", f"{k}={v}")]


def network_command(name: str, **options: Any) -> str:
    """The `docker network create` command line of `client.networks.create(name, **options)`. The
    session's labels are left out (as in run_command); options without a flag are named in a comment."""
    args, extra = ["docker", "network", "create"], []
    for key, value in options.items():
        if value is None or value is False or value == {}:
            continue
        if key in _NETWORK_VALUE:
            args += [_NETWORK_VALUE[key], str(value)]
        elif key in _NETWORK_FLAG:
            args.append(_NETWORK_FLAG[key])
        elif key == "options":
            args = _options(args, value)
        elif key == "ipam" and isinstance(value, Mapping):
            for pool in value.get("Config") or []:
                args += [a for k, flag in (("Subnet", "--subnet"), ("IPRange", "--ip-range"), ("Gateway", "--gateway"))
                         if pool.get(k) for a in (flag, pool[k])]
        else:
            extra.append(f"{key}={value!r}")
    return command_line(args + [name]) + (f"  # and SDK options {', '.join(extra)}" if extra else "")


def volume_command(name: str, driver: str | None = "local", driver_opts: Mapping[str, Any] | None = None) -> str:
    """The `docker volume create` command line (`--driver` only when it is not the default, local)."""
    args = ["docker", "volume", "create"] + (["--driver", driver] if driver and driver != "local" else [])
    return command_line(_options(args, driver_opts) + [name])


class LabNetwork(Network, Renderable):
    """The SDK's Network (equal to the same network from client.networks.get) that shows its command."""

    equivalent = ""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Network) and self.id == other.id

    def __hash__(self) -> int:
        return hash(f"Network:{self.id}")

    def _render(self):
        return table(["network", "driver", "internal"],
                     [(short_name(self.name or "?"), self.attrs.get("Driver", "?"), self.attrs.get("Internal", False))])


class LabVolume(Volume, Renderable):
    """The SDK's Volume (equal to the same volume from client.volumes.get) that shows its command."""

    equivalent = ""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Volume) and self.id == other.id

    def __hash__(self) -> int:
        return hash(f"Volume:{self.id}")

    def _render(self):
        return table(["volume", "driver"], [(short_name(self.name or "?"), self.attrs.get("Driver", "?"))])


def shown(model: Network | Volume, equivalent: str) -> LabNetwork | LabVolume:
    """The same SDK object (attrs, client, collection), as one that renders with `equivalent`."""
    kind = LabNetwork if isinstance(model, Network) else LabVolume
    obj = kind(attrs=model.attrs, client=model.client, collection=model.collection)
    obj.equivalent = equivalent
    return obj
