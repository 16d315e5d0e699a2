"""labkit: the helper library behind the Cloud-native labs notebooks."""
from .buildlog import BuildFailed, BuildReport, Step
from .hosttools import SSHAgent
from .containers import Container, Exec, Http, LogLine, RunResult, TcpPort
from .core.render import Callout, Chart, Stack, Table, callout, human_bytes, same_axis, seconds, stable, table, volatile
from .core.capabilities import Capabilities, doctor
from .core.errors import (BuildKitUnavailable, CheckError, CommandFailed, CommandTimeout, DaemonUnavailable,
                          EngineRestarted, EngineStopped, ImageMissing, InsufficientDisk, LabkitError, LabSkipped,
                          ReadinessTimeout, RecipeFailed, UnknownImage)
from .images import ImageSpec, prepare
from .core.reaper import CleanupReport
from .core.session import Session
from .lab import Lab
from .registry import Registry, RegistryUnavailable

__version__ = "0.1.0"

__all__ = [
    "BuildFailed",
    "BuildKitUnavailable",
    "BuildReport",
    "Callout",
    "Capabilities",
    "Chart",
    "CheckError",
    "CleanupReport",
    "CommandFailed",
    "CommandTimeout",
    "Container",
    "DaemonUnavailable",
    "EngineRestarted",
    "EngineStopped",
    "Exec",
    "Http",
    "ImageMissing",
    "ImageSpec",
    "InsufficientDisk",
    "Lab",
    "LabSkipped",
    "LabkitError",
    "LogLine",
    "ReadinessTimeout",
    "RecipeFailed",
    "Registry",
    "RegistryUnavailable",
    "RunResult",
    "SSHAgent",
    "Session",
    "Stack",
    "Step",
    "Table",
    "TcpPort",
    "UnknownImage",
    "callout",
    "doctor",
    "human_bytes",
    "prepare",
    "same_axis",
    "seconds",
    "stable",
    "table",
    "volatile",
]
