"""The agent's view of component options: one parse into the kind's typed options."""
import json

import pytest

from ragbackup import errors
from ragbackup.agent import options
from ragbackup.v1 import common_pb2


def spec(kind: str, **opts) -> common_pb2.ComponentSpec:
    return common_pb2.ComponentSpec(name="c", kind=kind, path="/srv/c", options_json=json.dumps(opts))


def test_redis_target_from_typed_options(tmp_path):
    pw = tmp_path / "pass"
    pw.write_text("from-file\n")
    t = options.redis_target(spec("redis", port=6380, owner="1:2", password_file=str(pw), tls=True))
    assert (t.port, t.owner, t.tls, t.data_dir, t.timeout_s) == (6380, (1, 2), True, "/srv/c", 300.0)
    assert t.password.reveal() == "from-file"
    assert options.redis_target(spec("redis", password="")).password is None


def test_chroma_target_and_consistency():
    o = options.Options(spec("chroma", consistency="stop", service="docker:rag-chromadb-prod"))
    assert o.consistency() == "stop" and o.service().backend == "docker" and o.service().name == "rag-chromadb-prod"
    t = options.chroma_target(spec("chroma"))
    assert (t.url, t.owner, t.probes, t.top_k, t.timeout_s) == ("http://127.0.0.1:8000", (1000, 1000), 3, 5, 60.0)


def test_paths_service_and_container():
    o = options.Options(spec("paths"))
    assert o.service().backend == "none" and o.container_path() is None
    where = options.Options(spec("paths", container="ct", container_path="/x")).container_path()
    assert (where.container, where.path) == ("ct", "/x")


@pytest.mark.parametrize("kind,opts,message", [
    ("redis", {"port": "6379"}, "component c: port: expected an integer 1..65535"),
    ("chroma", {"consistency": "pause"}, 'component c: consistency: "pause" needs `service`'),
    ("paths", {"owner": "1:1"}, "component c: unknown key(s) for kind 'paths': owner"),
    ("nosuch", {}, "component c: kind: expected one of"),
])
def test_bad_options_are_usage_errors(kind, opts, message):
    with pytest.raises(errors.UsageError) as caught:
        options.Options(spec(kind, **opts))
    assert caught.value.message.startswith(message)


def test_options_json_must_be_an_object():
    with pytest.raises(errors.UsageError, match="not a JSON object"):
        options.Options(common_pb2.ComponentSpec(name="c", kind="paths", options_json="[1]"))
