"""[tiers.NAME.object_lock] and [tiers.NAME.archive]: typed, defaults, and the lock's timing invariant."""
import datetime as dt

import pytest

from ragbackup import errors
from ragbackup.config import load_controller_config

BASE = """
[controller]
state_dir = "/tmp/x"
[repository]
path = "/tmp/repo"
password = "hunter2-secret"
[tls]
insecure = true
[tiers.s3]
endpoint_url = "http://127.0.0.1:8333"
bucket = "rag-primary"
"""


def _load(tmp_path, extra: str):
    p = tmp_path / "controller.toml"
    p.write_text(BASE + extra)
    return load_controller_config(str(p))


def test_a_tier_without_options_is_a_plain_copy(tmp_path):
    t = _load(tmp_path, "").tiers["s3"]
    assert (t.kind, t.object_lock, t.archive) == ("copy", None, None)


def test_object_lock_defaults_keep_maintenance_inside_the_margin(tmp_path):
    lock = _load(tmp_path, "[tiers.s3.object_lock]\ndays = 30\n").tiers["s3"].object_lock
    assert (lock.days, lock.mode) == (30, "COMPLIANCE")
    assert lock.maintain_every == dt.timedelta(days=1) and lock.extend_within == dt.timedelta(days=7)
    short = _load(tmp_path, "[tiers.s3.object_lock]\ndays = 1\nmode = \"GOVERNANCE\"\n").tiers["s3"].object_lock
    assert short.maintain_every < short.extend_within < dt.timedelta(days=1)


@pytest.mark.parametrize("table, message", [
    ('days = 10\nmaintain_every = "10d"', "maintain_every < extend_within < days"),
    ('days = 10\nextend_within = "12h"', "maintain_every < extend_within < days"),
    ('days = 10\nextend_within = "10d"', "maintain_every < extend_within < days"),
    ('days = 0', "days: expected a whole number >= 1"),
    ('mode = "COMPLIANCE"', "days: required key is missing"),
    ('days = 5\nmode = "STRICT"', "mode: expected one of COMPLIANCE, GOVERNANCE"),
    ('days = 5\nmaintain_every = "often"', "maintain_every: expected a time span"),
    ('days = 5\nlegal_hold = true', "unknown key(s): legal_hold"),
])
def test_bad_object_lock_tables_name_the_key(tmp_path, table, message):
    with pytest.raises(errors.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as exc:
        _load(tmp_path, f"[tiers.s3.object_lock]\n{table}\n")
    assert "[tiers.s3.object_lock]" in exc.value.message


def test_an_archive_tier_has_the_runbooks_classes_by_default(tmp_path):
    t = _load(tmp_path, 'kind = "archive"\n').tiers["s3"]
    assert t.kind == "archive"
    assert t.archive.transitions == {"GLACIER": 30, "DEEP_ARCHIVE": 90} and t.archive.expire_days == 2555
    custom = _load(tmp_path, 'kind = "archive"\n[tiers.s3.archive]\ntransitions = { GLACIER = 1 }\n'
                             'expire_days = 0\nrestore_wait = "2h"\n').tiers["s3"].archive
    assert custom.transitions == {"GLACIER": 1} and custom.restore_wait == dt.timedelta(hours=2)


@pytest.mark.parametrize("extra, message", [
    ('kind = "cold"\n', "kind: expected one of copy, archive"),
    ('[tiers.s3.archive]\nevery = "month"\n', "only for kind"),
    ('kind = "archive"\n[tiers.s3.archive]\ntransitions = { TAPE = 3 }\n', "transitions: expected"),
    ('kind = "archive"\n[tiers.s3.archive]\nexpire_days = 60\n', "expire_days: expected more days"),
    ('kind = "archive"\n[tiers.s3.archive]\nrestore_tier = "Fast"\n', "restore_tier: expected one of"),
])
def test_bad_archive_settings_name_the_key(tmp_path, extra, message):
    with pytest.raises(errors.ConfigError, match=message):
        _load(tmp_path, extra)


def test_no_tier_is_fed_from_an_archive_tier(tmp_path):
    extra = ('kind = "archive"\n[tiers.dr]\nendpoint_url = "http://127.0.0.1:8334"\nbucket = "rag-dr"\n'
             'feed = "s3"\n')
    with pytest.raises(errors.ConfigError, match=r"\[tiers.dr\] feed: 's3' is an archive tier"):
        _load(tmp_path, extra)
