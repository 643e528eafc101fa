"""Typed errors shared by the agent, the controller and ragctl.

In: raised anywhere in rag-backup. Out: each class carries the process exit code
ragctl uses and the gRPC status the servers send; `translate_rpc_error` turns a
received status back into the same class on the client side.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    import grpc

# Metadata key carrying the error class name across gRPC.
ERROR_KIND_KEY = "rag-error-kind"
# Metadata key carrying an error's structured details (JSON), e.g. a failed verification's rows.
ERROR_DETAILS_KEY = "rag-error-details"


class _Status:
    """A class's gRPC status, named here and looked up in grpc.StatusCode when read: a process that
    only raises these errors (the agent's RDB rebuild worker) does not load gRPC (20 MB)."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, obj: object, cls: type | None = None) -> "grpc.StatusCode":
        import grpc  # noqa: PLC0415 - loaded on first use; see the class docstring
        return grpc.StatusCode[self.name]


class RagBackupError(Exception):
    """rag-backup failed."""

    exit_code = 1
    grpc_status = _Status("UNKNOWN")

    def __init__(self, message: str | None = None, details: dict | None = None):
        super().__init__(message or (self.__doc__ or self.__class__.__name__).strip())
        self.details = details or {}

    @property
    def message(self) -> str:
        return str(self.args[0])

    def to_dict(self) -> dict:
        """What `ragctl --json` prints for the error: kind, message, exit code and details."""
        return {"kind": type(self).__name__, "message": self.message, "exit_code": self.exit_code,
                **self.details}


class UsageError(RagBackupError):
    """The command line or request is invalid."""

    exit_code = 2
    grpc_status = _Status("INVALID_ARGUMENT")


class ConfigError(RagBackupError):
    """The configuration is invalid."""

    exit_code = 3
    grpc_status = _Status("FAILED_PRECONDITION")


class RepositoryError(RagBackupError):
    """The repository cannot be used."""

    exit_code = 4
    grpc_status = _Status("FAILED_PRECONDITION")


class RepositoryNotFound(RepositoryError):
    """No repository exists at the configured location (run `ragctl init`)."""


class RepositoryExists(RepositoryError):
    """A repository already exists at the configured location."""

    grpc_status = _Status("ALREADY_EXISTS")


class WrongKey(RepositoryError):
    """The passphrase or key file does not open any key of the repository."""

    grpc_status = _Status("PERMISSION_DENIED")


class KeyDamaged(RepositoryError):
    """A key object of the repository is damaged (not a readable wrapped key)."""


class UnsupportedFormat(RepositoryError):
    """The repository was written in a format version this program does not read."""


class NotFound(RagBackupError):
    """The requested object does not exist."""

    exit_code = 5
    grpc_status = _Status("NOT_FOUND")


class IntegrityError(RagBackupError):
    """Stored data is damaged: authentication or hash check failed."""

    exit_code = 6
    grpc_status = _Status("DATA_LOSS")


class Unavailable(RagBackupError):
    """A peer (agent, controller, storage) cannot be reached."""

    exit_code = 7
    grpc_status = _Status("UNAVAILABLE")


class StorageUnavailable(Unavailable):
    """The storage backend cannot be reached or answered with a transient error."""


class AgentUnavailable(Unavailable):
    """The agent cannot be reached."""


class LockBusy(RagBackupError):
    """Another live job holds the lock."""

    exit_code = 8
    grpc_status = _Status("ABORTED")


class UnsafePath(RagBackupError):
    """A path would leave the restore target (absolute, `..`, or through a symlink)."""

    exit_code = 9
    grpc_status = _Status("INVALID_ARGUMENT")


class ExpansionRefused(UnsafePath):
    """A tarball member would expand far beyond the bytes it stores (a sparse-file bomb)."""


class NoSpace(RagBackupError):
    """Not enough free space on a volume the job needs to write to."""

    grpc_status = _Status("RESOURCE_EXHAUSTED")


class RepositoryNoSpace(RepositoryError, NoSpace):
    """The repository's volume is full."""

    grpc_status = _Status("RESOURCE_EXHAUSTED")


class StateError(ConfigError):
    """The controller's state_dir cannot be used (catalog, locks, index cache, staging)."""


class StateNoSpace(StateError, NoSpace):
    """The volume of the controller's state_dir is full."""

    grpc_status = _Status("RESOURCE_EXHAUSTED")


class Unhealthy(RagBackupError):
    """A health check failed."""

    exit_code = 10
    grpc_status = _Status("FAILED_PRECONDITION")


class VerificationFailed(RagBackupError):
    """Restored data does not match the facts recorded at backup time."""

    exit_code = 11
    grpc_status = _Status("DATA_LOSS")


class Cancelled(RagBackupError):
    """The operation was cancelled."""

    exit_code = 130
    grpc_status = _Status("CANCELLED")


# Where an OSError happened -> (its error class, the class when the volume is full).
_OS_AREAS: dict[str, tuple[type[RagBackupError], type[RagBackupError]]] = {
    "repository": (RepositoryError, RepositoryNoSpace),
    "state_dir": (StateError, StateNoSpace),
}
_FULL = FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# Attribute locate_os_error sets on an OSError: the operation that failed.
OS_OP_ATTR = "ragbackup_op"


def from_os_error(exc: OSError, area: str, op: str, path: str | None = None) -> RagBackupError:
    """The typed error for an OSError met while doing `op` in `area` ("repository" or "state_dir").

    The message names the area, the operation, the path and the reason with its errno name,
    e.g. "repository: cannot write /backups/repo/data/ab/x: Read-only file system (EROFS)".
    """
    cls, full = _OS_AREAS[area]
    where = path or exc.filename or "?"
    reason = exc.strerror or str(exc)
    name = errno.errorcode.get(exc.errno or 0, "")
    text = f"{area}: cannot {op} {os.fsdecode(where)}: {reason}" + (f" ({name})" if name else "")
    return (full if exc.errno in _FULL else cls)(text)


def no_space(exc: OSError) -> NoSpace:
    """NoSpace for a full volume outside the controller's areas (an agent's staging dir, a restore target).

    The path is the one written to: the destination of a copy (filename2), else the file named.
    """
    where = exc.filename2 or exc.filename or "?"
    op = getattr(exc, OS_OP_ATTR, None) or "write"
    name = errno.errorcode.get(exc.errno or 0, "")
    return NoSpace(f"cannot {op} {os.fsdecode(where)}: {exc.strerror or exc}" + (f" ({name})" if name else ""))


@contextlib.contextmanager
def os_boundary(area: str, op: str, path: str | None = None) -> Iterator[None]:
    """Turn an OSError raised inside into `from_os_error(exc, area, op, path)`."""
    try:
        yield
    except OSError as exc:
        raise from_os_error(exc, area, op, path or exc.filename) from None


def locate(exc: OSError, path: str, op: str) -> OSError:
    """`exc`, given the path and operation it lacks (a failed write(2) names no file), so the
    server's interceptor can tell its area and name both (core/rpc.py)."""
    if exc.filename is None:
        exc.filename = path
    if getattr(exc, OS_OP_ATTR, None) is None:
        setattr(exc, OS_OP_ATTR, op)
    return exc


@contextlib.contextmanager
def locate_os_error(path: str, op: str) -> Iterator[None]:
    """`locate` an OSError raised inside with `path` and `op`, and let it go on."""
    try:
        yield
    except OSError as exc:
        locate(exc, path, op)
        raise


def _all_subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


def error_class(name: str) -> type[RagBackupError]:
    """Map an error class name received over gRPC back to its class (base class if unknown)."""
    for cls in _all_subclasses(RagBackupError):
        if cls.__name__ == name:
            return cls
    return RagBackupError


_STATUS_FALLBACK = {  # by grpc.StatusCode name
    "UNAVAILABLE": Unavailable,
    "DEADLINE_EXCEEDED": Unavailable,
    "NOT_FOUND": NotFound,
    "INVALID_ARGUMENT": UsageError,
    "CANCELLED": Cancelled,
    "DATA_LOSS": IntegrityError,
    "UNAUTHENTICATED": Unavailable,
}


def translate_rpc_error(err: grpc.RpcError, peer: str) -> RagBackupError:
    """Turn a grpc.RpcError received from `peer` into the typed error the server raised."""
    kind, data = None, None
    for key, value in (err.trailing_metadata() or ()):
        if key == ERROR_KIND_KEY:
            kind = value
        elif key == ERROR_DETAILS_KEY:
            data = _details(value)
    code = err.code()
    details = err.details() or str(code)
    cls = error_class(kind) if kind else RagBackupError
    if kind and (cls is not RagBackupError or kind == RagBackupError.__name__):
        return cls(details, data)
    # No kind, or one this process has not loaded (e.g. wire.MalformedMessage): the status tells the class.
    cls = _STATUS_FALLBACK.get(getattr(code, "name", ""), RagBackupError)
    if cls is Unavailable:
        return Unavailable(f"{peer}: {details}")
    return cls(f"{peer}: {details}")


def _details(value: str) -> dict | None:
    try:
        data = json.loads(value)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
