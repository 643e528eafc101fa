"""Hostile input: the controller's and agent's TOML configs (core/config.py) and component options
(core/component_options.py), damaged as text and as values."""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import sys

from hypothesis import strategies as st

from reliability.fuzzlib import expect_typed, fuzz, mutated

from ragbackup import errors
from ragbackup.component_options import KIND_OPTIONS, parse_options
from ragbackup.controller.component_spec import component_spec
from ragbackup.config import load_agent_config, load_controller_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RICH = """
[controller]
socket = "/run/rag-backup/controller.sock"
state_dir = "/var/lib/rag-backup"
listen = "0.0.0.0:7450"
[repository]
type = "s3"
password = "pw"
pack_size_mib = 16
[repository.s3]
bucket = "b"
endpoint_url = "http://127.0.0.1:9000"
connect_timeout = 2
[tls]
insecure = true
[agents.a]
address = "unix:/run/rag-backup-agent/agent.sock"
[agents.b]
address = "10.0.0.2:7451"
server_name = "b"
[components.docs]
kind = "paths"
agent = "a"
path = "/srv/docs"
exclude = ["*.tmp"]
service = "docker:app/web"
[components.cache]
kind = "redis"
agent = "b"
port = 6380
owner = "999:999"
timeout_s = 30
password_file = "/etc/redis.pass"
[components.vectors]
kind = "chroma"
agent = "a"
path = "/srv/chroma"
consistency = "stop"
service = "systemd:chroma.service"
probes = 2
[recovery]
app_services = [{agent = "a", service = "docker:web"}]
[import]
max_expansion_ratio = 10
[metrics]
listen = "127.0.0.1:9752"
[alerts]
size_deviation = 0.5
webhook = "https://hooks.example/x"
[retention]
keep_last = 3
keep_daily = 7
keep_within = "2d"
timezone = "Europe/Berlin"
repack_pct = 40
[schedule]
full_every = "1d"
incremental_every = "6h"
components = ["docs"]
[objectives]
rpo = "6h"
rto = "1h"
"""


def _read(name: str) -> str:
    with open(os.path.join(ROOT, "packaging", name), encoding="utf-8") as f:
        return f.read()


CONTROLLER = [_read("controller.toml"), RICH]
AGENT = [_read("agent.toml")]

# --- TOML values: a minimal writer, enough to put any value where a valid one stood ---------

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x7f"), max_size=12)
EDGES = st.sampled_from(["", "/", "unix:", "unix:relative", "0", "-1", "1d", "0s", "Europe", "Etc",
                                     "x" * 300, "docker:", "systemd:x", "1:2\n", "Europe/Berlin", "a:b:c",
                                     "99999999999999999999d", "9" * 30 + "s", "1:99999999999999999999",
                                     "9" * 30, "nan", 2**63 - 1, -2**63, 0, -1, 65536, 2**31, float("nan"),
                                     float("inf"), -0.0, 1e-300, True, [], {}, [[]], ["/", ""]])
SCALARS = st.one_of(TEXT, st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=True, allow_infinity=True),
                    st.booleans(), st.datetimes(min_value=dt.datetime(1, 1, 2)), st.dates(), EDGES, EDGES, EDGES)
VALUES = st.recursive(SCALARS, lambda kids: st.one_of(st.lists(kids, max_size=3),
                                                      st.dictionaries(TEXT, kids, max_size=3)), max_leaves=6)


def _key(k: str) -> str:
    return json.dumps(k, ensure_ascii=False)


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, (int, dt.date)):
        return v.isoformat() if isinstance(v, dt.date) else str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"


def to_toml(doc: dict, prefix: tuple = ()) -> str:
    lines = [f"{_key(k)} = {_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    out = ([f"[{'.'.join(map(_key, prefix))}]"] if prefix else []) + lines
    for k, v in doc.items():
        if isinstance(v, dict):
            out.append(to_toml(v, prefix + (k,)))
    return "\n".join(out) + "\n"


def _paths(doc: dict, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    for k, v in doc.items():
        out += _paths(v, prefix + (k,)) if isinstance(v, dict) else [prefix + (k,)]
    return out


@st.composite
def edited(draw, texts: list[str]) -> str:
    """A valid config with 1-3 values replaced, removed or added anywhere, written back as TOML."""
    doc = tomllib.loads(draw(st.sampled_from(texts)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc) or [("x",)]))
        parent = doc
        for k in path[:-1]:
            parent = parent.setdefault(k, {}) if isinstance(parent.get(k, {}), dict) else {}
        action = draw(st.sampled_from(["replace", "remove", "add"]))
        if action == "remove":
            parent.pop(path[-1], None)
        elif action == "add":
            parent[draw(st.sampled_from(["kind", "agent", "path", "port", "owner", "x", "listen", "key_file"]))] = \
                draw(VALUES)
        else:
            parent[path[-1]] = draw(VALUES)
    return to_toml(doc)


def _check_loads(load, path: str):
    def check(text):
        data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
        with open(path, "wb") as f:
            f.write(data)
        cfg = expect_typed(lambda: load(path), errors.ConfigError)
        if cfg is not None and hasattr(cfg, "components"):
            for c in cfg.components.values():  # what the controller sends to the agent
                component_spec(c.name, c.kind, c.path, c.exclude, c.settings).SerializeToString()
    return check


def test_configs_round_trip_through_the_writer(record_property, tmp_path):
    """The shipped and a full controller config load; rewritten by the test's TOML writer, they load the same."""
    path = str(tmp_path / "c.toml")

    def check(text):
        with open(path, "w", encoding="utf-8") as f:
            f.write(to_toml(tomllib.loads(text)))
        again = load_controller_config(path)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        assert load_controller_config(path) == again
    record_property("tries", fuzz(check, st.sampled_from(CONTROLLER), fast=2, long=2))


def test_damaged_controller_configs_are_config_errors(record_property, tmp_path):
    """A damaged controller.toml (bytes mutated, or any value of any type anywhere) is ConfigError naming it, exit 3"""
    texts = st.one_of(edited(CONTROLLER), edited(CONTROLLER), mutated(st.sampled_from(CONTROLLER).map(str.encode)))
    record_property("tries", fuzz(_check_loads(load_controller_config, str(tmp_path / "c.toml")), texts))
    assert errors.ConfigError.exit_code == 3


def test_damaged_agent_configs_are_config_errors(record_property, tmp_path):
    """A damaged agent.toml (bytes mutated, or any value of any type anywhere) is ConfigError naming it, exit 3"""
    texts = st.one_of(edited(AGENT), mutated(st.sampled_from(AGENT).map(str.encode)))
    record_property("tries", fuzz(_check_loads(load_agent_config, str(tmp_path / "a.toml")), texts))


def test_component_options_of_any_value_are_config_errors(record_property):
    """A component's options of any key and value (the agent reads them from JSON) are typed or ConfigError"""
    keys = st.sampled_from(sorted({k for opts in KIND_OPTIONS.values() for k in opts} | {"x"}))

    def check(args):
        kind, options = args
        expect_typed(lambda: parse_options("fuzz:", kind, options), errors.ConfigError)
    record_property("tries", fuzz(check, st.tuples(st.sampled_from([*KIND_OPTIONS, "nope"]),
                                                   st.dictionaries(keys, VALUES, max_size=5))))
