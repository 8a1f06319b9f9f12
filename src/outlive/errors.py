"""The one error hierarchy of outlive.

Every error carries a message written as one sentence that says what is wrong and what to do,
so the CLI can print it as-is on stderr.

    OutliveError
    ├── ConfigError        bad outlive.toml, unknown target, invalid name (exit 2)
    │   └── NoProject      no outlive project here or above (exit 2)
    ├── UsageError         a command used in a way that cannot work (exit 2)
    │   └── UnsafeManifest a manifest path is absolute, holds '..'/NUL or leads outside (exit 2)
    ├── TransportError     the target cannot be reached or a command on it could not run
    │   └── Unreachable    the target did not answer (link down, host gone)
    ├── BoxError           the agent on the box reported a failure
    ├── RunNotFound        no run matches the given id or name (exit 2)
    ├── CheckpointError    a checkpoint could not be written or read
    │   └── DiskFullError  not enough free bytes or inodes for the next checkpoint
    ├── LocalDiskFull      this machine's disk cannot hold what a pull brings (exit 1)
    ├── ProviderError      a cloud provider's API failed or could not be reached (exit 1)
    │   └── ProviderAuthError  the API key is missing or was refused (exit 2)
    └── GateRefused        a destructive action was refused by the gate (exit 1)
"""

from __future__ import annotations

__all__ = [
    "BoxError",
    "CheckpointError",
    "ConfigError",
    "DiskFullError",
    "GateRefused",
    "LocalDiskFull",
    "NoProject",
    "OutliveError",
    "ProviderAuthError",
    "ProviderError",
    "RunNotFound",
    "TransportError",
    "Unreachable",
    "UnsafeManifest",
    "UsageError",
]


class OutliveError(Exception):
    """Base of every error outlive raises on purpose."""

    exit_code: int = 1


class ConfigError(OutliveError):
    """The configuration (file, target, option, name) is invalid."""

    exit_code = 2


class NoProject(ConfigError):
    """A command that needs the run registry ran outside any project; nothing was created."""


class UsageError(OutliveError):
    """The command was used in a way that cannot work."""

    exit_code = 2


class UnsafeManifest(UsageError):
    """A manifest path is absolute, holds '..', '.', NUL or an empty component, or resolves
    outside the destination; nothing was moved or written."""


class LocalDiskFull(OutliveError):
    """This machine's disk (a pull's destination) is full or cannot hold what a pull brings;
    partial files are kept so the next pull resumes."""


class TransportError(OutliveError):
    """A command could not be run on the target."""


class Unreachable(TransportError):
    """The target did not answer; nothing is known about its runs."""


class BoxError(OutliveError):
    """The box-side agent reported a failure; ``kind`` says which (e.g. "deploy_mismatch")."""

    def __init__(self, message: str, kind: str = "error") -> None:
        super().__init__(message)
        self.kind = kind


class RunNotFound(OutliveError):
    """No run matches the given id or name."""

    exit_code = 2


class CheckpointError(OutliveError):
    """A checkpoint could not be written or read."""


class DiskFullError(CheckpointError):
    """Not enough free bytes or inodes on the checkpoint filesystem."""


class GateRefused(OutliveError):
    """A destructive action was refused by the teardown gate."""


class ProviderError(OutliveError):
    """A cloud provider's API (RunPod, Paperspace) failed, or could not be reached."""


class ProviderAuthError(ProviderError):
    """No API key is configured for a provider, or the provider refused the key."""

    exit_code = 2
