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


def test_retention_table_loads(tmp_path):
    c = load_controller_config(_write(tmp_path, BASE + '[retention]\nkeep_within = "30d"\nkeep_daily = 7\n'
                                                      'timezone = "Europe/Berlin"\nrpo = "24h"\n'
                                                      'prune_after_backup = true\n'))
    r = c.retention
    assert (r.keep_within, r.keep_daily, r.timezone, r.rpo, r.prune_after_backup, r.repack_pct) == \
        ("30d", 7, "Europe/Berlin", "24h", True, 50)
    assert r.has_policy and not load_controller_config(_write(tmp_path, BASE)).retention.has_policy


@pytest.mark.parametrize("table,message", [
    ('keep_within = "30 days"', "[retention] keep_within: expected a duration"),
    ('rpo = "1.5h"', "[retention] rpo: expected a duration"),
    ("keep_last = -2", "[retention] keep_last: expected a count >= 0, or -1 for all"),
    ('timezone = "Mars/Olympus"', "[retention] timezone: expected an IANA time zone"),
    ("repack_pct = 101", "[retention] repack_pct: expected 0..100"),
    ("keep_dayly = 3", "[retention] unknown key(s): keep_dayly"),
])
def test_retention_errors_name_the_key(tmp_path, table, message):
    with pytest.raises(errors.ConfigError) as exc:
        load_controller_config(_write(tmp_path, BASE + "[retention]\n" + table + "\n"))
    assert message in exc.value.message
