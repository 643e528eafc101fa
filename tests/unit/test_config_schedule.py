"""[schedule] and [objectives] in controller.toml: defaults, values, and errors naming file and key."""
import datetime as dt

import pytest
from ragbackup import errors
from ragbackup.config import load_controller_config
from ragbackup.schedule import Objectives, Schedule

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


def _load(tmp_path, extra: str):
    p = tmp_path / "c.toml"
    p.write_text(BASE + extra)
    return load_controller_config(str(p))


def test_defaults_are_the_runbooks(tmp_path):
    cfg = _load(tmp_path, "")
    assert cfg.schedule == Schedule() and cfg.objectives == Objectives()
    assert (cfg.schedule.full_every, cfg.schedule.incremental_every) == (dt.timedelta(hours=24), dt.timedelta(hours=6))
    assert (cfg.objectives.rpo, cfg.objectives.rto) == (dt.timedelta(hours=4), dt.timedelta(hours=1))


def test_values(tmp_path):
    cfg = _load(tmp_path, '[schedule]\nincremental_every = "4h"\nmin_gap = "0s"\ncomponents = ["docs"]\n'
                          'deploy_debounce = "30s"\n[objectives]\nrpo = "2h"\nrto = "30m"\n')
    assert cfg.schedule.incremental_every == dt.timedelta(hours=4) and cfg.schedule.min_gap == dt.timedelta(0)
    assert cfg.schedule.components == ("docs",) and cfg.schedule.deploy_debounce == dt.timedelta(seconds=30)
    assert cfg.objectives == Objectives(rpo=dt.timedelta(hours=2), rto=dt.timedelta(minutes=30))


@pytest.mark.parametrize("extra,message", [
    ('[schedule]\nincremental_every = "often"\n', "[schedule] incremental_every: expected a time span of at least 1m"),
    ('[schedule]\nincremental_every = 6\n', "[schedule] incremental_every: expected a time span"),
    ('[schedule]\nfull_every = "30s"\n', "[schedule] full_every: expected a time span of at least 1m"),
    ('[schedule]\ncomponents = ["nope"]\n', "[schedule] components: expected names declared in [components]"),
    ('[schedule]\nhourly = true\n', "[schedule] unknown key(s): hourly"),
    ('[objectives]\nrpo = "4 hours"\n', "[objectives] rpo: expected a time span"),
    ('[objectives]\nrpa = "4h"\n', "[objectives] unknown key(s): rpa"),
])
def test_errors_name_file_and_key(tmp_path, extra, message):
    with pytest.raises(errors.ConfigError) as exc:
        _load(tmp_path, extra)
    assert message in exc.value.message and str(tmp_path / "c.toml") in exc.value.message
