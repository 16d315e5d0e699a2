"""labkit: the helper library behind the Cloud-native labs notebooks."""
from .containers import Container, Exec, Http, LogLine, RunResult, TcpPort
from .display import Callout, Chart, Table, callout, stable, table
from .engine import Capabilities, doctor
from .errors import (BuildKitUnavailable, CheckError, CommandFailed, CommandTimeout, DaemonUnavailable,
                     ImageMissing, InsufficientDisk, LabkitError, LabSkipped, ReadinessTimeout, RecipeFailed,
                     UnknownImage)
from .images import ImageSpec, prepare
from .lab import CleanupReport, Lab, clean

__version__ = "0.1.0"

__all__ = [
    "BuildKitUnavailable",
    "Callout",
    "Capabilities",
    "Chart",
    "CheckError",
    "CleanupReport",
    "CommandFailed",
    "CommandTimeout",
    "Container",
    "DaemonUnavailable",
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
    "RunResult",
    "Table",
    "TcpPort",
    "UnknownImage",
    "callout",
    "clean",
    "doctor",
    "prepare",
    "stable",
    "table",
]
