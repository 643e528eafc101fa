"""Component options on the wire: typed by the controller once, typed back by the agent once, no JSON."""
import dataclasses

import pytest

from ragbackup import errors
from ragbackup.agent.component import Component, options_of
from ragbackup.agent.kinds.chroma.api import target_of as chroma_target
from ragbackup.agent.kinds.redis.client import target_of as redis_target
from ragbackup.component_options import ChromaOptions, PathsOptions, RedisOptions, parse_options
from ragbackup.controller.component_spec import component_spec
from ragbackup.secret import Secret
from ragbackup.v1 import common_pb2

COMMON = {"service": "docker:proj/svc", "container": "ct", "container_path": "/var/lib/x"}
# Every option of every kind away from its default, so a field the conversion drops fails the test.
NOT_DEFAULT = {
    "paths": PathsOptions(**COMMON),
    "config": PathsOptions(service="systemd:app.service", container="ct2", container_path="/etc/app"),
    "redis": RedisOptions(**COMMON, host="10.0.0.5", port=6380, password=Secret("s3cret"),
                          password_file="/run/pw", username="backup", tls=True, tls_ca="/ca.pem", tls_cert="/c.pem",
                          tls_key="/k.pem", rdb_filename="data.rdb", owner=(1, 2), timeout_s=12.5),
    "chroma": ChromaOptions(**COMMON, url="https://chroma:8443", tenant="t", database="d", owner=(3, 4),
                            probes=7, top_k=9, timeout_s=2.5, consistency="pause"),
}


def test_every_field_of_every_kind_survives_the_wire():
    for kind, options in NOT_DEFAULT.items():
        spec = component_spec("c", kind, "/srv/c", ["*.tmp"], options)
        wire = common_pb2.ComponentSpec.FromString(spec.SerializeToString())
        assert options_of(wire) == options, kind
        for field in dataclasses.fields(options):
            assert getattr(options, field.name) != getattr(type(options)(), field.name), \
                f"{kind}.{field.name} is at its default: the test would not see it dropped"


def test_defaults_survive_too_and_an_absent_message_means_the_defaults():
    for kind, cls in (("paths", PathsOptions), ("redis", RedisOptions), ("chroma", ChromaOptions)):
        assert options_of(component_spec("c", kind, "/srv/c", (), None)) == cls()
        assert options_of(common_pb2.ComponentSpec(name="c", kind=kind)) == cls()


def test_the_agent_gets_what_the_controller_parsed_from_its_config():
    raw = {"port": 6380, "owner": "1:2", "password": "pw", "service": "docker:rag-redis"}
    options = parse_options("file: [components.c]", "redis", raw)
    comp = Component.of(component_spec("c", "redis", "/srv/c", ("x",), options))
    assert comp.options == options and comp.exclude == ("x",)
    assert comp.password().reveal() == "pw" and "pw" not in repr(comp)


def test_redis_target_reads_password_file_on_this_host(tmp_path):
    pw = tmp_path / "pass"
    pw.write_text("from-file\n")
    pw.chmod(0o600)
    options = RedisOptions(port=6380, owner=(1, 2), password_file=str(pw), tls=True)
    t = redis_target(Component.of(component_spec("c", "redis", "/srv/c", (), options)))
    assert (t.port, t.owner, t.tls, t.data_dir, t.timeout_s) == (6380, (1, 2), True, "/srv/c", 300.0)
    assert t.password.reveal() == "from-file"
    assert redis_target(Component.of(component_spec("c", "redis", "/srv/c", (), RedisOptions()))).password is None


def test_a_redis_password_file_others_may_read_is_refused(tmp_path):
    pw = tmp_path / "pass"
    pw.write_text("from-file\n")
    pw.chmod(0o644)
    options = RedisOptions(port=6380, password_file=str(pw))
    with pytest.raises(errors.ConfigError) as exc:
        redis_target(Component.of(component_spec("c", "redis", "/srv/c", (), options)))
    assert "chmod 600" in exc.value.message and "from-file" not in exc.value.message


def test_chroma_target_service_and_consistency():
    comp = Component.of(component_spec("c", "chroma", "/srv/c", (),
                                       ChromaOptions(consistency="stop", service="docker:rag-chromadb-prod")))
    assert comp.typed(ChromaOptions).consistency == "stop"
    assert (comp.service().backend, comp.service().name) == ("docker", "rag-chromadb-prod")
    t = chroma_target(Component.of(component_spec("c", "chroma", "/srv/c", (), None)))
    assert (t.url, t.owner, t.probes, t.top_k, t.timeout_s) == ("http://127.0.0.1:8000", (1000, 1000), 3, 5, 60.0)


def test_paths_service_and_container():
    comp = Component.of(component_spec("c", "paths", "/srv/c", (), None))
    assert comp.service().backend == "none" and comp.container_path() is None
    where = Component.of(component_spec("c", "paths", "/srv/c", (), PathsOptions(container="ct",
                                                                                 container_path="/x")))
    assert (where.container_path().container, where.container_path().path) == ("ct", "/x")


@pytest.mark.parametrize("spec,message", [
    (component_spec("c", "redis", "", (), ChromaOptions()), "component c: kind 'redis' came with chroma options"),
    (component_spec("c", "paths", "", (), RedisOptions()), "component c: kind 'paths' came with redis options"),
    (common_pb2.ComponentSpec(name="c", kind="nosuch"), "component c: kind: expected one of"),
    (common_pb2.ComponentSpec(name="c", kind="chroma", chroma=common_pb2.ChromaOptions(consistency=99)),
     "component c: consistency mode 99 is unknown to this agent"),
])
def test_options_of_another_kind_are_usage_errors(spec, message):
    with pytest.raises(errors.UsageError) as caught:
        Component.of(spec)
    assert caught.value.message.startswith(message)


def test_a_kind_without_its_settings_is_refused():
    comp = Component.of(component_spec("c", "paths", "/srv/c", (), None))
    with pytest.raises(errors.UsageError, match="has no RedisOptions"):
        comp.password()


def test_no_json_on_the_wire():
    fields = common_pb2.ComponentSpec.DESCRIPTOR.fields_by_name
    assert "options_json" not in fields
    assert {f.name for f in common_pb2.ComponentSpec.DESCRIPTOR.oneofs_by_name["options"].fields} == {
        "paths", "redis", "chroma"}
