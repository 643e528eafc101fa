"""Kind-specific component settings, parsed once from the ComponentSpec's options JSON.

In: a ComponentSpec (path + options_json from the controller's [components.X]).
Out: typed settings (RedisTarget, ChromaTarget, a ServiceSpec, a ContainerPath)
built from the kind's frozen options (ragbackup.component_options: the same check
and types the controller applied when it loaded its config). A bad value raises
UsageError naming the component and the key. Secrets (password, password_file)
become `Secret`s and are never echoed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from ragbackup import errors
from ragbackup.component_options import ChromaOptions, PathsOptions, RedisOptions, parse_options
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
    """One component's options, checked and typed at construction."""

    def __init__(self, spec: common_pb2.ComponentSpec):
        self.spec = spec
        try:
            data = json.loads(spec.options_json or "{}")
        except ValueError:
            raise errors.UsageError(f"component {spec.name}: options are not valid JSON") from None
        if not isinstance(data, dict):
            raise errors.UsageError(f"component {spec.name}: options are not a JSON object")
        try:
            self.settings: PathsOptions = parse_options(f"component {spec.name}:", spec.kind, data)
        except errors.ConfigError as exc:
            raise errors.UsageError(exc.message) from None

    def typed(self, cls: type) -> "PathsOptions":
        """The settings as `cls` (RedisOptions, ChromaOptions); UsageError for another kind."""
        if not isinstance(self.settings, cls):
            raise errors.UsageError(f"component {self.spec.name}: kind {self.spec.kind!r} has no "
                                    f"{cls.__name__} settings")
        return self.settings

    def password(self) -> Secret | None:
        """The inline password, or the content of password_file read on this host."""
        s = self.typed(RedisOptions)
        if not s.password_file:
            return s.password
        try:
            with open(s.password_file, encoding="utf-8") as f:
                return Secret(f.read().strip())
        except OSError as exc:
            raise errors.ConfigError(f"component {self.spec.name}: cannot read password_file {s.password_file}: "
                                     f"{exc.strerror}") from None

    def service(self) -> ServiceSpec:
        """`service = "docker:NAME"`, `"systemd:UNIT"`, `"docker:PROJECT/SERVICE"` or absent (none)."""
        if not self.settings.service:
            return ServiceSpec("none")
        backend, _, name = self.settings.service.partition(":")
        return ServiceSpec(backend, name)

    def container_path(self) -> ContainerPath | None:
        if not self.settings.container:
            return None
        return ContainerPath(self.settings.container, self.settings.container_path)

    def consistency(self) -> str:
        return self.typed(ChromaOptions).consistency


def redis_target(spec: common_pb2.ComponentSpec, data_dir: str = "") -> RedisTarget:
    o = Options(spec)
    s = o.typed(RedisOptions)
    return RedisTarget(
        data_dir=data_dir or spec.path, host=s.host, port=s.port, password=o.password(),
        username=s.username or None, tls=s.tls, tls_ca=s.tls_ca or None, tls_cert=s.tls_cert or None,
        tls_key=s.tls_key or None, rdb_filename=s.rdb_filename, owner=s.owner, timeout_s=s.timeout_s)


def chroma_target(spec: common_pb2.ComponentSpec, persist_dir: str = "") -> ChromaTarget:
    s = Options(spec).typed(ChromaOptions)
    return ChromaTarget(
        persist_dir=persist_dir or spec.path, url=s.url, tenant=s.tenant, database=s.database, owner=s.owner,
        probes=s.probes, top_k=s.top_k, timeout_s=s.timeout_s)
