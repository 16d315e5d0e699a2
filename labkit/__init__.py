"""labkit: the helper library behind the Cloud-native labs notebooks."""
from .build import BuildFailed, BuildReport, SSHAgent, Step
from .containers import Container, Exec, Http, LogLine, RunResult, TcpPort
from .display import Callout, Chart, Stack, Table, callout, human_bytes, seconds, stable, table, volatile
from .engine import Capabilities, doctor
from .errors import (BuildKitUnavailable, CheckError, CommandFailed, CommandTimeout, DaemonUnavailable,
                     EngineRestarted, EngineStopped, ImageMissing, InsufficientDisk, LabkitError, LabSkipped, ReadinessTimeout, RecipeFailed,
                     UnknownImage)
from .images import ImageSpec, prepare
from .cleanup import CleanupReport, clean
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
    "Stack",
    "Step",
    "Table",
    "TcpPort",
    "UnknownImage",
    "callout",
    "clean",
    "doctor",
    "human_bytes",
    "prepare",
    "seconds",
    "stable",
    "table",
    "volatile",
]
