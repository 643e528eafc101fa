"""The component a request names, typed once where it enters the agent.

In: a ComponentSpec from the controller: name, kind, path, excludes and the kind's options
message (typed and checked when the controller loaded its config: controller/component_spec.py).
Out: a frozen Component holding the same PathsOptions, RedisOptions or ChromaOptions the
controller holds (ragbackup.component_options), the one place the message becomes them; an
option left unset takes the kind's default. Nothing is checked again, but options of another
kind than the spec's, or a kind this agent does not know, are a UsageError naming the component.
The Redis password becomes a `Secret` here; `password_file` is read on this host when used.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from ragbackup import errors
from ragbackup.component_options import PathsOptions, RedisOptions, options_class
from ragbackup.secret import Secret, read_private
from ragbackup.v1 import common_pb2

from ragbackup.agent.services.base import ServiceSpec

_MESSAGE = {"paths": "paths", "config": "paths", "redis": "redis", "chroma": "chroma"}
_CONSISTENCY = {common_pb2.CONSISTENCY_ONLINE: "online", common_pb2.CONSISTENCY_PAUSE: "pause",
                common_pb2.CONSISTENCY_STOP: "stop"}
Options = TypeVar("Options", bound=PathsOptions)


@dataclass(frozen=True)
class ContainerPath:
    """Data that lives inside a container (no host bind mount): reached via the Docker API."""

    container: str
    path: str


@dataclass(frozen=True)
class Component:
    """One component as a request names it, its options typed."""

    name: str
    kind: str
    path: str
    exclude: tuple[str, ...]
    options: PathsOptions

    @classmethod
    def of(cls, spec: common_pb2.ComponentSpec) -> Component:
        return cls(spec.name, spec.kind, spec.path, tuple(spec.exclude), options_of(spec))

    def typed(self, want: type[Options]) -> Options:
        """The options as `want` (RedisOptions, ChromaOptions); UsageError for another kind."""
        if not isinstance(self.options, want):
            raise errors.UsageError(f"component {self.name}: kind {self.kind!r} has no {want.__name__}")
        return self.options

    def service(self) -> ServiceSpec:
        """`service = "docker:NAME"`, `"systemd:UNIT"`, `"docker:PROJECT/SERVICE"` or absent (none)."""
        if not self.options.service:
            return ServiceSpec("none")
        backend, _, name = self.options.service.partition(":")
        return ServiceSpec(backend, name)  # type: ignore[arg-type]

    def container_path(self) -> ContainerPath | None:
        if not self.options.container:
            return None
        return ContainerPath(self.options.container, self.options.container_path)

    def password(self) -> Secret | None:
        """The inline password, or the content of password_file read on this host."""
        o = self.typed(RedisOptions)
        if not o.password_file:
            return o.password
        raw = read_private(o.password_file, "password_file", f"component {self.name}: ")
        try:
            return Secret(raw.decode("utf-8").strip())
        except UnicodeDecodeError:
            raise errors.ConfigError(f"component {self.name}: password_file {o.password_file} is not UTF-8 text") from None


def options_of(spec: common_pb2.ComponentSpec) -> PathsOptions:
    """The spec's options message as the kind's frozen options (defaults for what it leaves unset)."""
    cls, want = options_class(spec.kind), _MESSAGE.get(spec.kind)
    if cls is None or want is None:
        raise errors.UsageError(f"component {spec.name}: kind: expected one of {', '.join(_MESSAGE)}, "
                                f"got {spec.kind!r} (a controller newer than this agent?)")
    which = spec.WhichOneof("options")
    if which is None:
        return cls()
    if which != want:
        raise errors.UsageError(f"component {spec.name}: kind {spec.kind!r} came with {which} options")
    message = getattr(spec, which)
    if which == "paths":
        return cls(**_set_fields(message))
    return cls(**_set_fields(message.common), **_kind_fields(spec.name, message))


def _set_fields(message: Any) -> dict[str, Any]:
    """The fields the message sets, by name (unset optional fields are left to the defaults)."""
    return {field.name: value for field, value in message.ListFields()}


def _kind_fields(name: str, message: common_pb2.RedisOptions | common_pb2.ChromaOptions) -> dict[str, Any]:
    values = _set_fields(message)
    values.pop("common", None)
    if "owner" in values:
        values["owner"] = (message.owner.uid, message.owner.gid)
    if "password" in values:
        values["password"] = Secret(message.password) if message.password else None
    if "consistency" in values:
        if message.consistency not in _CONSISTENCY:
            raise errors.UsageError(f"component {name}: consistency mode {message.consistency} is unknown to "
                                    "this agent (a controller newer than this agent?)")
        values["consistency"] = _CONSISTENCY[message.consistency]
    return values
