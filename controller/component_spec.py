"""The ComponentSpec the controller sends an agent: its typed options become protobuf here, and only here.

In: a component's name, kind, path and excludes and its options as typed at config load
(ragbackup.component_options: PathsOptions, RedisOptions or ChromaOptions, defaults filled in).
Out: a ComponentSpec whose `options` oneof holds the kind's message with every option set, so the
agent (agent/component.py, the reverse) types them back without checking them again. The Redis
password travels as the options always carried it (inside the gRPC channel); nothing logs a spec.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ragbackup.component_options import ChromaOptions, PathsOptions, RedisOptions, default_options
from ragbackup.v1 import common_pb2

# Options handled one by one below; every other field maps by name to the message's field.
_SPECIAL = ("owner", "password", "consistency")
_CONSISTENCY = {"online": common_pb2.CONSISTENCY_ONLINE, "pause": common_pb2.CONSISTENCY_PAUSE,
                "stop": common_pb2.CONSISTENCY_STOP}


def component_spec(name: str, kind: str, path: str, exclude: Sequence[str],
                   options: PathsOptions | None) -> common_pb2.ComponentSpec:
    """The spec of one component; `options` None (a component no longer configured) = the kind's defaults."""
    spec = common_pb2.ComponentSpec(name=name, kind=kind, path=path, exclude=list(exclude))
    field, message = options_message(options if options is not None else default_options(kind))
    getattr(spec, field).CopyFrom(message)
    return spec


def options_message(options: PathsOptions) -> tuple[str, Any]:
    """(oneof field, message) of typed options: "paths", "redis" or "chroma"."""
    common = common_pb2.PathsOptions(service=options.service, container=options.container,
                                     container_path=options.container_path)
    if isinstance(options, RedisOptions):
        message = common_pb2.RedisOptions(common=common, owner=_owner(options.owner), **_own_fields(options))
        if options.password is not None:
            message.password = options.password.reveal()
        return "redis", message
    if isinstance(options, ChromaOptions):
        return "chroma", common_pb2.ChromaOptions(common=common, owner=_owner(options.owner),
                                                  consistency=_CONSISTENCY[options.consistency],
                                                  **_own_fields(options))
    return "paths", common


def _own_fields(options: PathsOptions) -> dict[str, Any]:
    """The kind's own plain options (beyond PathsOptions' and the special ones), by name."""
    common = {f.name for f in dataclasses.fields(PathsOptions)}
    return {f.name: getattr(options, f.name) for f in dataclasses.fields(options)
            if f.name not in common and f.name not in _SPECIAL}


def _owner(owner: tuple[int, int]) -> common_pb2.Owner:
    return common_pb2.Owner(uid=owner[0], gid=owner[1])
