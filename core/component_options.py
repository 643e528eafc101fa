"""Each component kind's options: checked, then typed, once where they enter a process.

In: a component's kind and the keys of its [components.NAME] table beyond kind, agent,
path and exclude, when the controller loads its config. Out: a frozen PathsOptions,
RedisOptions or ChromaOptions with every default filled in, or a ConfigError naming where,
the key and what was expected: an unknown key, a value of the wrong type or shape, or a
combination that cannot work (consistency "pause"/"stop" without `service`). The controller
sends them typed in the ComponentSpec (controller/component_spec.py) and the agent types the
message back into these same classes (agent/component.py) without checking them again.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ragbackup.errors import ConfigError
from ragbackup.secret import Secret

CONSISTENCY_MODES = ("online", "pause", "stop")
SERVICE_FORMAT = '"docker:CONTAINER", "docker:PROJECT/SERVICE" or "systemd:UNIT"'
_OWNER = re.compile(r"^\d+:\d+$")

# A check returns None when the value is fine, else what was expected.
Check = Callable[[Any], "str | None"]


def _is_str(v: Any) -> str | None:
    return None if isinstance(v, str) else "a string"


def _nonempty(v: Any) -> str | None:
    return None if isinstance(v, str) and v.strip() else "a non-empty string"


def _abs_path(v: Any) -> str | None:
    return None if isinstance(v, str) and os.path.isabs(v) else "an absolute path"


def _file_name(v: Any) -> str | None:
    ok = isinstance(v, str) and v and "/" not in v and v not in (".", "..")
    return None if ok else "a plain file name"


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "true or false"


def _int_range(lo: int, hi: int) -> Check:
    def check(v: Any) -> str | None:
        ok = isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi
        return None if ok else f"an integer {lo}..{hi}"
    return check


def _seconds(v: Any) -> str | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
    return None if ok else "a positive number of seconds"


def _owner(v: Any) -> str | None:
    return None if isinstance(v, str) and _OWNER.match(v) else '"UID:GID", e.g. "999:999"'


def _service(v: Any) -> str | None:
    if not isinstance(v, str):
        return SERVICE_FORMAT
    backend, _, name = v.partition(":")
    return None if backend in ("docker", "systemd") and name.strip() else SERVICE_FORMAT


def _url(v: Any) -> str | None:
    return None if isinstance(v, str) and re.match(r"^https?://[^/\s]+", v) else "an http:// or https:// URL"


def _consistency(v: Any) -> str | None:
    return None if v in CONSISTENCY_MODES else " or ".join(f'"{m}"' for m in CONSISTENCY_MODES)


_COMMON: dict[str, Check] = {"service": _service, "container": _nonempty, "container_path": _abs_path}
_REDIS: dict[str, Check] = {
    "host": _nonempty, "port": _int_range(1, 65535), "password": _is_str, "password_file": _abs_path,
    "username": _is_str, "tls": _bool, "tls_ca": _abs_path, "tls_cert": _abs_path, "tls_key": _abs_path,
    "rdb_filename": _file_name, "owner": _owner, "timeout_s": _seconds}
_CHROMA: dict[str, Check] = {
    "url": _url, "tenant": _nonempty, "database": _nonempty, "owner": _owner, "probes": _int_range(0, 1000),
    "top_k": _int_range(1, 1000), "timeout_s": _seconds, "consistency": _consistency}
KIND_OPTIONS: dict[str, dict[str, Check]] = {
    "paths": _COMMON, "config": _COMMON, "redis": {**_COMMON, **_REDIS}, "chroma": {**_COMMON, **_CHROMA}}


def check_options(where: str, kind: str, options: dict[str, Any]) -> None:
    """ConfigError (prefixed with `where`, e.g. "FILE: [components.NAME]") for the first bad option."""
    allowed = KIND_OPTIONS[kind]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"{where} unknown key(s) for kind {kind!r}: {', '.join(unknown)} "
                          f"(allowed: kind, agent, path, exclude, {', '.join(sorted(allowed))})")
    for key, value in options.items():
        expected = allowed[key](value)
        if expected is not None:
            raise ConfigError(f"{where} {key}: expected {expected}")
    _check_combinations(where, kind, options)


def _check_combinations(where: str, kind: str, options: dict[str, Any]) -> None:
    if "password" in options and "password_file" in options:
        raise ConfigError(f"{where} password, password_file: set one of them, not both")
    if "container_path" in options and "container" not in options:
        raise ConfigError(f"{where} container_path: needs `container` (the container holding the data)")
    mode = options.get("consistency", "online")
    if mode in ("pause", "stop") and "service" not in options:
        raise ConfigError(f"{where} consistency: \"{mode}\" needs `service` ({SERVICE_FORMAT}), "
                          "the service paused or stopped while the data is copied")
    if kind == "chroma" and mode == "online" and "container" in options:
        raise ConfigError(f"{where} consistency: \"online\" needs the persist dir on the agent's host (path); "
                          "for data inside a container use \"pause\" or \"stop\"")


@dataclass(frozen=True)
class PathsOptions:
    """Options every kind has (and all that paths and config have)."""

    service: str = ""  # "docker:NAME", "docker:PROJECT/SERVICE", "systemd:UNIT"; "" = none
    container: str = ""  # data inside this container (no host bind mount), via the Docker API
    container_path: str = "/data"  # where, inside `container`


@dataclass(frozen=True)
class RedisOptions(PathsOptions):
    host: str = "127.0.0.1"
    port: int = 6379
    password: Secret | None = None
    password_file: str = ""  # read where the password is used (on the agent's host)
    username: str = ""
    tls: bool = False
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    rdb_filename: str = "dump.rdb"
    owner: tuple[int, int] = (999, 999)
    timeout_s: float = 300.0


@dataclass(frozen=True)
class ChromaOptions(PathsOptions):
    url: str = "http://127.0.0.1:8000"
    tenant: str = "default_tenant"
    database: str = "default_database"
    owner: tuple[int, int] = (1000, 1000)
    probes: int = 3
    top_k: int = 5
    timeout_s: float = 60.0
    consistency: str = "online"


ComponentOptions = PathsOptions  # the base every kind's options extend
_TYPES: dict[str, type[PathsOptions]] = {
    "paths": PathsOptions, "config": PathsOptions, "redis": RedisOptions, "chroma": ChromaOptions}


def default_options(kind: str) -> PathsOptions:
    """The options of a component of `kind` that sets none (every default); ConfigError for an unknown kind."""
    if kind not in _TYPES:
        raise ConfigError(f"kind: expected one of {', '.join(_TYPES)}, got {kind!r}")
    return _TYPES[kind]()


def options_class(kind: str) -> type[PathsOptions] | None:
    """The typed options class of `kind`; None for a kind this version does not know."""
    return _TYPES.get(kind)


def parse_options(where: str, kind: str, options: dict[str, Any]) -> PathsOptions:
    """check_options, then the kind's typed options (ConfigError prefixed with `where`)."""
    if kind not in _TYPES:
        raise ConfigError(f"{where} kind: expected one of {', '.join(_TYPES)}, got {kind!r}")
    check_options(where, kind, options)
    values = dict(options)
    if "owner" in values:
        uid, gid = values["owner"].split(":")
        values["owner"] = (int(uid), int(gid))
    if "password" in values:
        values["password"] = Secret(values["password"]) if values["password"] else None
    if "timeout_s" in values:
        values["timeout_s"] = float(values["timeout_s"])
    return _TYPES[kind](**values)
