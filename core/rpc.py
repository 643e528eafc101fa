"""One server interceptor mapping typed errors to gRPC status, for both daemons.

In: servicer methods raising ragbackup.errors.RagBackupError. Out: an aborted RPC
with the error's status code, its message as details, and its class name in the
trailing metadata (clients rebuild the same class with errors.translate_rpc_error).
Unexpected exceptions are logged with a traceback and surface as UNKNOWN.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Callable

import grpc

from ragbackup import errors

log = logging.getLogger("ragbackup.rpc")


def _abort(context: grpc.ServicerContext, exc: errors.RagBackupError) -> None:
    metadata = [(errors.ERROR_KIND_KEY, type(exc).__name__)]
    if exc.details:  # JSON's default ASCII escaping keeps it a valid metadata value
        metadata.append((errors.ERROR_DETAILS_KEY, json.dumps(exc.details, sort_keys=True)))
    context.set_trailing_metadata(tuple(metadata))
    context.abort(exc.grpc_status, exc.message)


def _unary(fn: Callable, name: str) -> Callable:
    def wrapper(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return fn(request, context)
        except errors.RagBackupError as exc:
            log.warning("%s failed: %s", name, exc.message)
            _abort(context, exc)
        except Exception:
            log.exception("%s failed unexpectedly", name)
            raise
    return wrapper


def _streaming(fn: Callable, name: str) -> Callable:
    def wrapper(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            yield from fn(request, context)
        except errors.RagBackupError as exc:
            log.warning("%s failed: %s", name, exc.message)
            _abort(context, exc)
        except Exception:
            if context.is_active():
                log.exception("%s failed unexpectedly", name)
            raise
    return wrapper


class ErrorInterceptor(grpc.ServerInterceptor):
    """Wraps every handler so typed errors become their gRPC status."""

    def intercept_service(self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        name = handler_call_details.method
        if handler.unary_unary:
            return handler._replace(unary_unary=_unary(handler.unary_unary, name))
        if handler.stream_unary:
            return handler._replace(stream_unary=_unary(handler.stream_unary, name))
        if handler.unary_stream:
            return handler._replace(unary_stream=_streaming(handler.unary_stream, name))
        if handler.stream_stream:
            return handler._replace(stream_stream=_streaming(handler.stream_stream, name))
        return handler
