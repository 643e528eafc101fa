"""Config loading: the shipped examples load; broken files name the file, key and expectation."""
import os

import pytest

from ragbackup import errors
from ragbackup.config import load_agent_config, load_controller_config
from ragbackup.secret import Secret

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BASE = """
[controller]
state_dir = "/tmp/x"
[repository]
path = "/tmp/repo"
password = "hunter2-secret"
[tls]
insecure = true
[agents.a]
address = "127.0.0.1:1"
[components.docs]
kind = "paths"
agent = "a"
path = "/srv/docs"
"""


def _write(tmp_path, text):
    p = tmp_path / "c.toml"
    p.write_text(text)
    return str(p)


def test_shipped_examples_load():
    c = load_controller_config(os.path.join(ROOT, "packaging", "controller.toml"))
    assert set(c.components) == {"documents", "processing", "config"}
    a = load_agent_config(os.path.join(ROOT, "packaging", "agent.toml"))
    assert a.listen == "0.0.0.0:7451"


def test_secret_never_in_repr(tmp_path):
    c = load_controller_config(_write(tmp_path, BASE))
    assert isinstance(c.repository.password, Secret)
    assert "hunter2" not in repr(c) and "hunter2" not in str(c.repository)


@pytest.mark.parametrize("edit,message", [
    (lambda s: s.replace('kind = "paths"', 'kind = "mongo"'), "[components.docs] kind: expected one of"),
    (lambda s: s.replace('agent = "a"', 'agent = "b"'), "[components.docs] agent: 'b' is not declared"),
    (lambda s: s.replace('path = "/srv/docs"', 'path = "relative"'), "expected an absolute path"),
    (lambda s: s.replace('password = "hunter2-secret"', ''), "set password_file"),
    (lambda s: s.replace("insecure = true", ""), "[tls] ca, cert and key are required"),
    (lambda s: s + "\n[bogus]\n", "unknown key(s): bogus"),
    (lambda s: s.replace('address = "127.0.0.1:1"', "address = 7"), "[agents.a] address: expected str"),
    (lambda s: s + "\n[[[", "invalid TOML"),
])
def test_broken_config_names_the_problem(tmp_path, edit, message):
    path = _write(tmp_path, edit(BASE))
    with pytest.raises(errors.ConfigError) as info:
        load_controller_config(path)
    assert message in info.value.message and path in info.value.message
    assert "hunter2" not in info.value.message


def test_missing_file(tmp_path):
    with pytest.raises(errors.ConfigError, match="not found"):
        load_controller_config(str(tmp_path / "nope.toml"))


def test_secret_file(tmp_path):
    (tmp_path / "pw").write_text("from-file\n")
    os.chmod(tmp_path / "pw", 0o600)
    c = load_controller_config(_write(tmp_path, BASE.replace('password = "hunter2-secret"',
                                                             f'password_file = "{tmp_path}/pw"')))
    from ragbackup.controller.state import make_unlocker
    assert c.repository.password_file == f"{tmp_path}/pw"
    assert make_unlocker(c.repository).secret == b"from-file"


UNIX_ONLY = BASE.replace("[tls]\ninsecure = true\n", "").replace(
    'address = "127.0.0.1:1"', 'address = "unix:/run/rag-backup-agent/agent.sock"')


def test_agents_on_unix_sockets_need_no_tls(tmp_path):
    c = load_controller_config(_write(tmp_path, UNIX_ONLY))
    assert c.agents["a"].address == "unix:/run/rag-backup-agent/agent.sock"
    assert not (c.tls.ca or c.tls.insecure)
    a = load_agent_config(_write(tmp_path, '[agent]\nlisten = "unix:/run/rag-backup-agent/agent.sock"\n'))
    assert a.listen.startswith("unix:")


@pytest.mark.parametrize("edit,message", [
    (lambda s: s + '[agents.b]\naddress = "db1:7451"\n', "[tls] ca, cert and key are required for db1:7451"),
    (lambda s: s.replace("[controller]\n", '[controller]\nlisten = "127.0.0.1:7450"\n'),
     "required for 127.0.0.1:7450"),
    (lambda s: s.replace("unix:/run/rag-backup-agent/agent.sock", "unix:run/agent.sock"),
     "unix:run/agent.sock: expected unix:/absolute/path"),
    (lambda s: s.replace("unix:/run/rag-backup-agent/agent.sock", "unix:/" + "d" * 120),
     "holds at most 107 bytes"),
])
def test_tls_required_unless_every_address_is_a_unix_socket(tmp_path, edit, message):
    path = _write(tmp_path, edit(UNIX_ONLY))
    with pytest.raises(errors.ConfigError) as info:
        load_controller_config(path)
    assert message in info.value.message and path in info.value.message


def test_agent_on_tcp_needs_tls(tmp_path):
    path = _write(tmp_path, '[agent]\nlisten = "0.0.0.0:7451"\n')
    with pytest.raises(errors.ConfigError, match="required for 0.0.0.0:7451"):
        load_agent_config(path)


def _with_component(tmp_path, kind: str, lines: str) -> str:
    return _write(tmp_path, BASE + f"[components.c]\nkind = \"{kind}\"\nagent = \"a\"\npath = \"/srv/c\"\n{lines}\n")


@pytest.mark.parametrize("kind,lines,message", [
    ("chroma", 'consistency = "pause"', '[components.c] consistency: "pause" needs `service`'),
    ("chroma", 'consistency = "stop"', '[components.c] consistency: "stop" needs `service`'),
    ("chroma", 'consistency = "sometimes"', '[components.c] consistency: expected "online" or "pause" or "stop"'),
    ("chroma", 'container = "c1"', '[components.c] consistency: "online" needs the persist dir'),
    ("chroma", 'url = "localhost:8000"', "[components.c] url: expected an http:// or https:// URL"),
    ("chroma", "probes = -1", "[components.c] probes: expected an integer 0..1000"),
    ("redis", 'owner = "redis"', '[components.c] owner: expected "UID:GID"'),
    ("redis", "port = 70000", "[components.c] port: expected an integer 1..65535"),
    ("redis", 'port = "6379"', "[components.c] port: expected an integer 1..65535"),
    ("redis", "password_file = \"relative/pass\"", "[components.c] password_file: expected an absolute path"),
    ("redis", 'password = "x"\npassword_file = "/etc/p"', "[components.c] password, password_file: set one"),
    ("redis", 'rdb_filename = "../dump.rdb"', "[components.c] rdb_filename: expected a plain file name"),
    ("redis", "timeout_s = 0", "[components.c] timeout_s: expected a positive number of seconds"),
    ("redis", "tls = 1", "[components.c] tls: expected true or false"),
    ("paths", 'service = "rag-redis"', '[components.c] service: expected "docker:CONTAINER"'),
    ("paths", 'service = "docker:"', '[components.c] service: expected "docker:CONTAINER"'),
    ("paths", 'container_path = "/data"', "[components.c] container_path: needs `container`"),
    ("paths", 'container = "c1"\ncontainer_path = "data"', "[components.c] container_path: expected an absolute"),
    ("paths", 'consistency = "pause"', "[components.c] unknown key(s) for kind 'paths': consistency"),
    ("redis", "prot = 6379", "[components.c] unknown key(s) for kind 'redis': prot"),
    ("config", 'owner = "1:1"', "[components.c] unknown key(s) for kind 'config': owner"),
])
def test_component_options_are_checked_at_load(tmp_path, kind, lines, message):
    path = _with_component(tmp_path, kind, lines)
    with pytest.raises(errors.ConfigError) as caught:
        load_controller_config(path)
    assert caught.value.message.startswith(f"{path}: "), caught.value.message
    assert message in caught.value.message


@pytest.mark.parametrize("kind,lines", [
    ("chroma", 'consistency = "pause"\nservice = "docker:rag-chromadb-prod"\nowner = "1000:1000"\nprobes = 0'),
    ("chroma", 'url = "https://chroma.internal:8000"\ntop_k = 10\ntimeout_s = 2.5\ntenant = "t"\ndatabase = "d"'),
    ("redis", 'port = 6380\npassword_file = "/etc/rag/redis.pass"\nservice = "systemd:redis-server.service"'),
    ("redis", 'container = "rag-redis-prod"\ncontainer_path = "/data"\ntls = true\nrdb_filename = "x.rdb"'),
    ("paths", 'service = "docker:proj/app"'),
])
def test_valid_component_options_load(tmp_path, kind, lines):
    cfg = load_controller_config(_with_component(tmp_path, kind, lines))
    assert cfg.components["c"].kind == kind


def test_component_options_are_typed_once_at_load(tmp_path):
    from ragbackup.component_options import ChromaOptions, PathsOptions, RedisOptions
    cfg = load_controller_config(_write(tmp_path, BASE + """
[components.kv]
kind = "redis"
agent = "a"
path = "/var/lib/redis"
owner = "998:997"
password = "pw-secret"
timeout_s = 5
[components.vec]
kind = "chroma"
agent = "a"
path = "/chroma"
"""))
    kv, vec, docs = (cfg.components[n].settings for n in ("kv", "vec", "docs"))
    assert isinstance(kv, RedisOptions) and kv.owner == (998, 997) and kv.timeout_s == 5.0 and kv.port == 6379
    assert kv.password.reveal() == "pw-secret" and "pw-secret" not in repr(kv)
    assert isinstance(vec, ChromaOptions) and vec.owner == (1000, 1000) and vec.consistency == "online"
    assert type(docs) is PathsOptions and docs.service == "" and docs.container_path == "/data"


def test_metrics_alerts_objectives_defaults_and_values(tmp_path):
    from ragbackup.controller.status import objectives
    c = load_controller_config(_write(tmp_path, BASE))
    assert c.metrics.listen == "" and c.alerts.min_free_ratio == 0.10 and c.alerts.max_backup_age_hours == 25
    assert objectives(c) == (4 * 3600, 3600)
    c = load_controller_config(_write(tmp_path, BASE + '[metrics]\nlisten = "127.0.0.1:9752"\n[alerts]\n'
                                      'min_free_ratio = 0.2\nwebhook = "http://127.0.0.1:1/x"\n'
                                      '[objectives]\nrpo = "30m"\nrto = "10m"\n'))
    assert c.metrics.listen == "127.0.0.1:9752" and c.alerts.min_free_ratio == 0.2
    assert objectives(c) == (1800, 600)


@pytest.mark.parametrize("extra,message", [
    ('[metrics]\nlisten = "9752"\n', "[metrics] listen: expected HOST:PORT"),
    ('[alerts]\nmin_free_ratio = 1.5\n', "[alerts] min_free_ratio: expected a finite number > 0 and < 1"),
    ('[alerts]\nsize_deviation = "x"\n', "[alerts] size_deviation: expected a number"),
    ('[alerts]\nwebhook = "ftp://x"\n', "[alerts] webhook: expected an http:// or https:// URL"),
    ('[alerts]\nnoise = 1\n', "[alerts] unknown key(s): noise"),
])
def test_metrics_and_alerts_errors_name_the_key(tmp_path, extra, message):
    with pytest.raises(errors.ConfigError) as exc:
        load_controller_config(_write(tmp_path, BASE + extra))
    assert message in exc.value.message


def test_objectives_bad_duration_names_the_key(tmp_path):
    with pytest.raises(errors.ConfigError) as exc:  # at load, not when the status is first asked for
        load_controller_config(_write(tmp_path, BASE + '[objectives]\nrpo = "soon"\n'))
    assert "[objectives] rpo: expected" in exc.value.message


def test_retention_table_loads(tmp_path):
    c = load_controller_config(_write(tmp_path, BASE + '[retention]\nkeep_within = "30d"\nkeep_daily = 7\n'
                                                      'timezone = "Europe/Berlin"\nrpo = "24h"\n'
                                                      'prune_after_backup = true\n'))
    r = c.retention
    assert (r.keep_within, r.keep_daily, r.timezone, r.rpo, r.prune_after_backup, r.repack_pct) == \
        ("30d", 7, "Europe/Berlin", "24h", True, 50)
    assert r.has_policy and not load_controller_config(_write(tmp_path, BASE)).retention.has_policy
    assert r.reader_wait == 600 and load_controller_config(
        _write(tmp_path, BASE + "[retention]\nreader_wait = 0\n")).retention.reader_wait == 0


@pytest.mark.parametrize("table,message", [
    ('keep_within = "30 days"', "[retention] keep_within: expected a duration"),
    ('rpo = "1.5h"', "[retention] rpo: expected a duration"),
    ("keep_last = -2", "[retention] keep_last: expected a count >= 0, or -1 for all"),
    ('timezone = "Mars/Olympus"', "[retention] timezone: expected an IANA time zone"),
    ("repack_pct = 101", "[retention] repack_pct: expected 0..100"),
    ("keep_dayly = 3", "[retention] unknown key(s): keep_dayly"),
    ("reader_wait = -1", "[retention] reader_wait: expected a number of seconds >= 0"),
    ("reader_wait = nan", "[retention] reader_wait: expected a number of seconds >= 0"),
    ("reader_wait = inf", "[retention] reader_wait: expected a number of seconds >= 0"),
    ('reader_wait = "10m"', "[retention] reader_wait: expected a number of seconds"),
])
def test_retention_errors_name_the_key(tmp_path, table, message):
    with pytest.raises(errors.ConfigError) as exc:
        load_controller_config(_write(tmp_path, BASE + "[retention]\n" + table + "\n"))
    assert message in exc.value.message
