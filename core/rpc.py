"""One server interceptor mapping typed errors to gRPC status, for both daemons.

In: servicer methods raising ragbackup.errors.RagBackupError. Out: an aborted RPC
with the error's status code, its message as details, and its class name in the
trailing metadata (clients rebuild the same class with errors.translate_rpc_error).
An OSError that no boundary translated becomes the typed error of the area its
path lies in (the interceptor is told, e.g., the state_dir and a local repository),
naming the path and the call; a full volume outside those areas (an agent's staging
dir, a restore target) becomes NoSpace naming the path; unexpected exceptions are logged
with a traceback and surface as UNKNOWN. A request that does not decode (a protobuf DecodeError
or wire.MalformedMessage in the method's deserializer) reaches the servicer as a marker that
the wrapper turns into MalformedMessage: the peer gets INVALID_ARGUMENT naming the method, where
gRPC itself would answer INTERNAL "Exception deserializing request!" and log a traceback.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import grpc
from google.protobuf.message import DecodeError

from ragbackup import errors
from ragbackup.wire import MalformedMessage

log = logging.getLogger("ragbackup.rpc")


def _abort(context: grpc.ServicerContext, exc: errors.RagBackupError) -> None:
    metadata = [(errors.ERROR_KIND_KEY, type(exc).__name__)]
    if exc.details:  # JSON's default ASCII escaping keeps it a valid metadata value
        metadata.append((errors.ERROR_DETAILS_KEY, json.dumps(exc.details, sort_keys=True)))
    context.set_trailing_metadata(tuple(metadata))
    context.abort(exc.grpc_status, exc.message)


def area_of(path: str | bytes | None, areas: Mapping[str, str]) -> str | None:
    """Pure: the area ("repository", "state_dir") whose directory holds `path`; the deepest wins."""
    if not path:
        return None
    path = os.path.abspath(os.fsdecode(path))
    best = None
    for root, area in areas.items():
        root = os.path.abspath(root)
        if (path == root or path.startswith(root.rstrip("/") + "/")) and (best is None or len(root) > len(best[0])):
            best = (root, area)
    return best[1] if best else None


def _typed(exc: Exception, name: str, areas: Mapping[str, str]) -> errors.RagBackupError | None:
    """The typed error for an exception a servicer let through, or None (unexpected)."""
    if isinstance(exc, errors.RagBackupError):
        return exc
    if isinstance(exc, OSError):
        area = area_of(exc.filename, areas)
        if area is not None:
            op = getattr(exc, errors.OS_OP_ATTR, None) or f"use ({name.rsplit('/', 1)[-1]})"
            return errors.from_os_error(exc, area, op)
        if exc.errno in errors.FULL_ERRNOS:
            return errors.no_space(exc)
    return None


@dataclass(frozen=True)
class _Undecodable:
    """What a request deserializer gives for bytes that do not parse: the error to raise in its place."""

    error: MalformedMessage


def _tolerant(deserializer: Callable[[bytes], Any] | None, name: str) -> Callable[[bytes], Any] | None:
    """`deserializer`, returning _Undecodable instead of raising a DecodeError (gRPC would answer INTERNAL)."""
    if deserializer is None:
        return None

    def deserialize(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except DecodeError as exc:
            return _Undecodable(MalformedMessage(f"{name}: the request does not parse ({len(raw)} bytes): {exc}"))
    return deserialize


def _decoded(request: Any) -> Any:
    """`request`, or its MalformedMessage raised when it did not decode."""
    if isinstance(request, _Undecodable):
        raise request.error
    return request


def _decoded_stream(requests: Iterator[Any]) -> Iterator[Any]:
    for request in requests:
        yield _decoded(request)


def _unary(fn: Callable, name: str, areas: Mapping[str, str], streamed: bool = False) -> Callable:
    def wrapper(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return fn(_decoded_stream(request) if streamed else _decoded(request), context)
        except Exception as exc:
            typed = _typed(exc, name, areas)
            if typed is None:
                log.exception("%s failed unexpectedly", name)
                raise
            log.warning("%s failed: %s", name, typed.message)
            _abort(context, typed)
    return wrapper


def _streaming(fn: Callable, name: str, areas: Mapping[str, str], streamed: bool = False) -> Callable:
    def wrapper(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            yield from fn(_decoded_stream(request) if streamed else _decoded(request), context)
        except Exception as exc:
            typed = _typed(exc, name, areas)
            if typed is None:
                if context.is_active():
                    log.exception("%s failed unexpectedly", name)
                raise
            log.warning("%s failed: %s", name, typed.message)
            _abort(context, typed)
    return wrapper


class ErrorInterceptor(grpc.ServerInterceptor):
    """Wraps every handler so typed errors become their gRPC status.

    `os_areas` maps directories to the area an OSError under them belongs to
    ({state_dir: "state_dir", repository path: "repository"}).
    """

    def __init__(self, os_areas: Mapping[str, str] | None = None):
        self.os_areas = dict(os_areas or {})

    def intercept_service(self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        name = handler_call_details.method
        handler = handler._replace(request_deserializer=_tolerant(handler.request_deserializer, name))
        if handler.unary_unary:
            return handler._replace(unary_unary=_unary(handler.unary_unary, name, self.os_areas))
        if handler.stream_unary:
            return handler._replace(stream_unary=_unary(handler.stream_unary, name, self.os_areas, streamed=True))
        if handler.unary_stream:
            return handler._replace(unary_stream=_streaming(handler.unary_stream, name, self.os_areas))
        if handler.stream_stream:
            return handler._replace(stream_stream=_streaming(handler.stream_stream, name, self.os_areas,
                                                             streamed=True))
        return handler
