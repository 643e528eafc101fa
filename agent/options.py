"""Kind-specific component settings, parsed from the ComponentSpec's options JSON.

In: a ComponentSpec (path + options_json from the controller's [components.X]).
Out: typed settings (RedisTarget, ChromaTarget, a ServiceSpec, a ContainerPath);
any bad value raises UsageError naming the component and the key (the controller
checked the same options when it loaded its config: ragbackup.component_options). Secrets
(password, password_file) become `Secret`s and are never echoed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ragbackup import errors
from ragbackup.component_options import CONSISTENCY_MODES
from ragbackup.secret import Secret
from ragbackup.v1 import common_pb2

from ragbackup.agent.capture.chroma import ChromaTarget
from ragbackup.agent.capture.redis import RedisTarget
from ragbackup.agent.services.base import ServiceSpec



@dataclass(frozen=True)
class ContainerPath:
    """Data that lives inside a container (no host bind mount): reached via the Docker API."""

    container: str
    path: str


class Options:
    """Typed reads of one component's options."""

    def __init__(self, spec: common_pb2.ComponentSpec):
        self.spec = spec
        try:
            self.data: dict[str, Any] = json.loads(spec.options_json or "{}")
        except ValueError:
            raise errors.UsageError(f"component {spec.name}: options are not valid JSON") from None

    def _bad(self, key: str, expected: str) -> errors.UsageError:
        return errors.UsageError(f"component {self.spec.name}: option {key}: expected {expected}")

    def get(self, key: str, typ: type | tuple, default: Any) -> Any:
        value = self.data.get(key, default)
        if value is not default and (not isinstance(value, typ) or isinstance(value, bool) and typ is int):
            raise self._bad(key, getattr(typ, "__name__", str(typ)))
        return value

    def owner(self, default: tuple[int, int]) -> tuple[int, int]:
        text = self.get("owner", str, "")
        if not text:
            return default
        try:
            uid, gid = (int(x) for x in text.split(":"))
        except ValueError:
            raise self._bad("owner", '"UID:GID", e.g. "999:999"') from None
        return uid, gid

    def secret(self, key: str) -> Secret | None:
        if f"{key}_file" in self.data:
            path = self.get(f"{key}_file", str, "")
            try:
                with open(path, encoding="utf-8") as f:
                    return Secret(f.read().strip())
            except OSError as exc:
                raise errors.ConfigError(f"component {self.spec.name}: cannot read {key}_file {path}: "
                                         f"{exc.strerror}") from None
        value = self.get(key, str, None)
        return Secret(value) if value else None

    def service(self) -> ServiceSpec:
        """`service = "docker:NAME"`, `"systemd:UNIT"`, `"docker:PROJECT/SERVICE"` or absent (none)."""
        text = self.get("service", str, "")
        if not text:
            return ServiceSpec("none")
        backend, _, name = text.partition(":")
        if backend not in ("docker", "systemd") or not name:
            raise self._bad("service", '"docker:CONTAINER", "docker:PROJECT/SERVICE" or "systemd:UNIT"')
        return ServiceSpec(backend, name)

    def container_path(self) -> ContainerPath | None:
        container = self.get("container", str, "")
        if not container:
            return None
        path = self.get("container_path", str, "/data")
        if not path.startswith("/"):
            raise self._bad("container_path", "an absolute path inside the container")
        return ContainerPath(container, path)

    def consistency(self) -> str:
        mode = self.get("consistency", str, "online")
        if mode not in CONSISTENCY_MODES:
            raise self._bad("consistency", " or ".join(CONSISTENCY_MODES))
        return mode

    def timeout(self, default: float) -> float:
        return float(self.get("timeout_s", (int, float), default))


def redis_target(spec: common_pb2.ComponentSpec, data_dir: str = "") -> RedisTarget:
    o = Options(spec)
    return RedisTarget(
        data_dir=data_dir or spec.path, host=o.get("host", str, "127.0.0.1"), port=o.get("port", int, 6379),
        password=o.secret("password"), username=o.get("username", str, None) or None,
        tls=o.get("tls", bool, False), tls_ca=o.get("tls_ca", str, None), tls_cert=o.get("tls_cert", str, None),
        tls_key=o.get("tls_key", str, None), rdb_filename=o.get("rdb_filename", str, "dump.rdb"),
        owner=o.owner((999, 999)), timeout_s=o.timeout(300.0))


def chroma_target(spec: common_pb2.ComponentSpec, persist_dir: str = "") -> ChromaTarget:
    o = Options(spec)
    return ChromaTarget(
        persist_dir=persist_dir or spec.path, url=o.get("url", str, "http://127.0.0.1:8000"),
        tenant=o.get("tenant", str, "default_tenant"), database=o.get("database", str, "default_database"),
        owner=o.owner((1000, 1000)), probes=o.get("probes", int, 3), top_k=o.get("top_k", int, 5),
        timeout_s=o.timeout(60.0))
