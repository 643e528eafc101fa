"""[tiers.NAME]: offsite tiers load typed, with their defaults; every problem names file and key."""
import pytest

from ragbackup import errors
from ragbackup.config import TierConfig, load_controller_config, parse_rate

BASE = """
[controller]
state_dir = "/tmp/x"
[repository]
path = "/tmp/repo"
password = "hunter2-secret"
[tls]
insecure = true
"""

TIERS = """
[tiers.s3]
endpoint_url = "http://127.0.0.1:8333"
bucket = "rag-primary"
credentials = "{creds}"
profile = "backup"
bandwidth_limit = "50MiB"
restore_memory = "1GiB"
read_ahead = 0
[tiers.dr]
endpoint_url = "http://127.0.0.1:8334"
bucket = "rag-dr"
region = "eu-west-1"
feed = "s3"
storage_class_packs = "STANDARD"
[tiers.dr.retention]
keep_daily = 30
"""


@pytest.fixture
def creds(tmp_path):
    p = tmp_path / "credentials"
    p.write_text("[default]\naws_access_key_id = nope\naws_secret_access_key = nope\n"
                 "[backup]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = s3cr3t-value\n")
    p.chmod(0o600)
    return str(p)


def _load(tmp_path, text):
    p = tmp_path / "c.toml"
    p.write_text(BASE + text)
    return load_controller_config(str(p))


def test_tiers_load_with_defaults(tmp_path, creds):
    cfg = _load(tmp_path, TIERS.format(creds=creds))
    s3, dr = cfg.tiers["s3"], cfg.tiers["dr"]
    assert isinstance(s3, TierConfig) and s3.feed == "primary" and dr.feed == "s3"
    assert s3.access_key_id.reveal() == "AKIAEXAMPLE" and s3.secret_access_key.reveal() == "s3cr3t-value"
    assert dr.access_key_id is None  # the standard AWS chain
    assert s3.storage_class_packs == "STANDARD_IA" and s3.storage_class_metadata == "STANDARD"
    assert s3.storage_classes()["data/"] == "STANDARD_IA" and s3.storage_classes()["snapshots/"] == "STANDARD"
    assert s3.retention.keep_within == "90d"  # the tier default
    assert dr.retention.keep_daily == 30 and dr.retention.keep_within == ""  # a rule replaces the default
    assert s3.bandwidth_limit == 50 * 1024 * 1024 and dr.bandwidth_limit == 0
    assert s3.restore_memory == 1024**3 and dr.restore_memory == 256 * 1024**2
    assert s3.read_ahead == 0 and dr.read_ahead == 2
    assert "s3cr3t" not in repr(cfg) and "AKIAEXAMPLE" not in repr(cfg)


def test_no_tiers_is_empty(tmp_path):
    assert _load(tmp_path, "").tiers == {}


@pytest.mark.parametrize("text,message", [
    ('[tiers.s3]\nbucket = "b"\nfeed = "dr"\n', "[tiers.s3] feed: expected \"primary\" or the name"),
    ('[tiers.a]\nbucket = "b"\nfeed = "b"\n[tiers.b]\nbucket = "c"\nfeed = "a"\n', "feeds loop"),
    ('[tiers.s3]\nbucket = ""\n', "[tiers.s3] bucket: expected a non-empty string"),
    ('[tiers.s3]\n', "[tiers.s3] bucket: required key is missing"),
    ('[tiers.primary]\nbucket = "b"\n', "[tiers.primary]: a tier name"),
    ('[tiers.s3]\nbucket = "b"\nstorage_class_packs = "COLD"\n', "[tiers.s3] storage_class_packs: expected one of"),
    ('[tiers.s3]\nbucket = "b"\nbandwidth_limit = "fast"\n', "[tiers.s3] bandwidth_limit: expected a rate"),
    ('[tiers.s3]\nbucket = "b"\nrestore_memory = "1MiB"\n', "[tiers.s3] restore_memory: expected a size from 32MiB"),
    ('[tiers.s3]\nbucket = "b"\nrestore_memory = "lots"\n', "[tiers.s3] restore_memory: expected a size from 32MiB"),
    ('[tiers.s3]\nbucket = "b"\nread_ahead = 9\n', "[tiers.s3] read_ahead: expected a whole number 0..8"),
    ('[tiers.s3]\nbucket = "b"\nmax_concurrency = 0\n', "[tiers.s3] max_concurrency: expected a whole number 1..64"),
    ('[tiers.s3]\nbucket = "b"\nendpoint_url = "127.0.0.1:1"\n', "[tiers.s3] endpoint_url: expected an http"),
    ('[tiers.s3]\nbucket = "b"\nread_timeout = 0\n', "[tiers.s3] read_timeout: expected a finite number > 0"),
    ('[tiers.s3]\nbucket = "b"\n[tiers.s3.retention]\nkeep_within = "soon"\n',
     "[tiers.s3.retention] keep_within: expected a duration"),
    ('[tiers.s3]\nbucket = "b"\n[tiers.s3.retention]\nkeep_within = ""\n', "[tiers.s3] retention: expected at least"),
    ('[tiers.s3]\nbucket = "b"\ncredentials = "/nonexistent/creds"\n', "[tiers.s3] credentials: cannot read"),
    ('[tiers.s3]\nbucket = "b"\nsecret = 1\n', "[tiers.s3] unknown key(s): secret"),
])
def test_bad_tier_names_file_and_key(tmp_path, text, message):
    with pytest.raises(errors.ConfigError) as exc:
        _load(tmp_path, text)
    assert message in exc.value.message and "c.toml" in exc.value.message


def test_missing_profile_is_named_without_values(tmp_path, creds):
    with pytest.raises(errors.ConfigError) as exc:
        _load(tmp_path, f'[tiers.s3]\nbucket = "b"\ncredentials = "{creds}"\nprofile = "other"\n')
    assert "has no [other] profile" in exc.value.message and "s3cr3t" not in exc.value.message


@pytest.mark.parametrize("text,rate", [("50MiB", 50 * 2**20), ("10MB", 10**7), ("65536", 65536), ("1.5 GiB", 3 * 2**29),
                                       ("x", None)])
def test_parse_rate(text, rate):
    assert parse_rate(text) == rate


def test_replication_runs_tiers_in_feed_order(tmp_path):
    from ragbackup.controller.jobs.replicate import tier_order

    cfg = _load(tmp_path, '[tiers.a]\nbucket = "x"\nfeed = "z"\n[tiers.z]\nbucket = "y"\nfeed = "m"\n'
                          '[tiers.m]\nbucket = "w"\n')
    assert tier_order(cfg) == ["m", "z", "a"]
    assert tier_order(cfg, "z") == ["z"]
    with pytest.raises(errors.UsageError, match="no tier named 'q'"):
        tier_order(cfg, "q")


def test_a_credentials_file_others_may_read_is_refused(tmp_path, creds):
    import os
    os.chmod(creds, 0o644)
    with pytest.raises(errors.ConfigError) as exc:
        _load(tmp_path, TIERS.format(creds=creds))
    assert "chmod 600" in exc.value.message and creds in exc.value.message
    assert "s3cr3t" not in exc.value.message
