"""Verification mismatches: the readable table, and the rows crossing gRPC as error details."""
from __future__ import annotations

from concurrent import futures

import grpc
from ragbackup import errors, mismatch, rpc
from ragbackup.mismatch import Mismatch


def test_mismatch_text_and_dict():
    m = Mismatch("docs", "count", "300", "299")
    assert m.text() == "docs: count 299, expected 300"
    assert m.to_dict() == {"collection": "docs", "check": "count", "expected": "300", "found": "299"}


def test_rows_are_a_readable_table():
    rows = mismatch.rows({"redis": [Mismatch("db0", "DBSIZE", "5", "4").to_dict()],
                          "chroma": [Mismatch("docs", "count", "300", "299").to_dict(),
                                     Mismatch("x" * 200, "collection", "present", "missing").to_dict()]})
    assert [r["component"] for r in rows] == ["chroma", "chroma", "redis"]
    assert len(rows[1]["collection"]) == mismatch.MAX_VALUE and rows[1]["collection"].endswith("...")
    lines = mismatch.render(rows).splitlines()
    assert lines[0].split() == ["component", "collection", "check", "expected", "found"]
    assert lines[1].split() == ["chroma", "docs", "count", "300", "299"]
    assert lines[3].split() == ["redis", "db0", "DBSIZE", "5", "4"]
    assert lines[1].index("300") == lines[3].index("5"), "columns are aligned"


def test_render_says_how_many_are_left_out():
    rows = mismatch.rows({"chroma": [Mismatch(f"c{i}", "count", "1", "2").to_dict() for i in range(20)]})
    text = mismatch.render(rows)
    assert len(text.splitlines()) == 1 + mismatch.MAX_ROWS + 1
    assert text.endswith(f"... and {20 - mismatch.MAX_ROWS} more (the agent's log lists them all)")


def _serve(exc: errors.RagBackupError):
    def fail(request, context):
        raise exc
    server = grpc.server(futures.ThreadPoolExecutor(1), interceptors=[rpc.ErrorInterceptor()])
    handler = grpc.method_handlers_generic_handler("t.T", {"Fail": grpc.unary_unary_rpc_method_handler(fail)})
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def test_the_largest_verification_error_crosses_grpc_with_its_rows():
    """Worst case: every row and value at its limit still fits gRPC's metadata limit (8 KiB)."""
    long = "v" * 500
    table = mismatch.rows({"c" * 100: [Mismatch(long, long, long, long).to_dict() for _ in range(50)]})
    sent = errors.VerificationFailed(f"differs ({len(table)}):\n{mismatch.render(table)}",
                                     {"mismatches": table[:mismatch.MAX_ROWS], "mismatch_count": len(table)})
    server, port = _serve(sent)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/t.T/Fail", request_serializer=None, response_deserializer=None)
            try:
                call(b"", timeout=10)
                raise AssertionError("the call succeeded")
            except grpc.RpcError as err:
                got = errors.translate_rpc_error(err, "test")
    finally:
        server.stop(None)
    assert type(got) is errors.VerificationFailed and got.exit_code == 11
    assert got.message == sent.message
    assert got.details == sent.details and len(got.details["mismatches"]) == mismatch.MAX_ROWS
    assert got.to_dict()["mismatch_count"] == 50
