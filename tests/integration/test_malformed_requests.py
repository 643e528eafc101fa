"""Requests whose bytes do not parse, sent raw to the real daemons: INVALID_ARGUMENT, not INTERNAL.

In: a LocalStack (agent on its unix socket, controller on its socket, both processes) and raw
byte strings sent with no serializer. Out: each call ends with INVALID_ARGUMENT naming the method
and the error kind MalformedMessage in the trailing metadata; the daemons keep serving.
"""
from __future__ import annotations

import grpc
import pytest
from ragbackup import errors

from fixtures.stack import running_stack

# A field-1 varint that never ends, and a chunk batch (field 3) whose chunk runs past its end.
NOT_PROTOBUF = b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
BAD_CHUNK_BATCH = b"\x1a\x05\x0a\x09abc"


def _raw_call(address: str, method: str, payload: bytes, streamed: bool) -> grpc.RpcError:
    with grpc.insecure_channel(address) as channel:
        if streamed:
            call = channel.stream_unary(method, request_serializer=None, response_deserializer=None)
            request = iter([payload])
        else:
            call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
            request = payload
        with pytest.raises(grpc.RpcError) as info:
            call(request, timeout=20)
    return info.value


def _kind(err: grpc.RpcError) -> str:
    return dict(err.trailing_metadata() or ()).get(errors.ERROR_KIND_KEY, "")


@pytest.mark.parametrize("daemon,method,payload,streamed", [
    ("agent", "/ragbackup.v1.Agent/Health", NOT_PROTOBUF, False),
    ("agent", "/ragbackup.v1.Agent/Restore", BAD_CHUNK_BATCH, True),
    ("agent", "/ragbackup.v1.Agent/Restore", NOT_PROTOBUF, True),
    ("controller", "/ragbackup.v1.Controller/Health", NOT_PROTOBUF, False),
    ("controller", "/ragbackup.v1.Controller/Import", NOT_PROTOBUF, True),
])
def test_a_request_that_does_not_parse_is_invalid_argument(tmp_path, daemon, method, payload, streamed):
    with running_stack(str(tmp_path / "stack"), {}, init=False, agent_socket=True) as st:
        address = f"unix:{st.agent_socket}" if daemon == "agent" else f"unix:{st.socket}"
        err = _raw_call(address, method, payload, streamed)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
        assert method in err.details() and "does not parse" in err.details(), err.details()
        assert _kind(err) == "MalformedMessage"
        typed = errors.translate_rpc_error(err, daemon)
        assert isinstance(typed, errors.UsageError) and typed.exit_code == 2
        assert "Exception deserializing" not in st.log_tail(daemon, 200)
        cp = st.ragctl("health", "--json", check=False)  # still serving
        assert cp.returncode in (0, 10) and '"checks"' in cp.stdout, cp.stderr
