"""Hostile input: a repository's plaintext config and key objects (core/repo/repository.py, crypto.py)."""
from __future__ import annotations

import json
import os

from hypothesis import strategies as st

from reliability.fuzzlib import expect_typed, fuzz, mutated

from ragbackup import errors
from ragbackup.repo import crypto
from ragbackup.repo.repository import CONFIG_KEY, Repository
from ragbackup.storage.local import LocalStorage

KEYFILE = crypto.Unlocker("keyfile", b"k" * 32)
MASTER = crypto.MasterKey.generate()
KEY_OBJECT = crypto.wrap_master_key(MASTER, KEYFILE)
CONFIG = json.dumps({"format": "rag-backup", "version": 1, "id": "0a4d01773fbb431aa53c0119a734e983",
                     "params": {"pack_size": 65536, "compression_level": 3}}, indent=1).encode()
# A key object without its checksum (written before it existed): mutations reach the fields themselves
UNCHECKED = json.dumps({k: v for k, v in json.loads(KEY_OBJECT).items() if k != "check"}).encode()


def test_damaged_repository_config_and_key_objects_are_refused_typed(record_property, tmp_path):
    """A damaged repository config or key object is a typed repository error (exit 4), and no cache leaves its dir"""
    storage = LocalStorage(str(tmp_path / "repo"), fsync=False)  # durability is not under test
    cache = tmp_path / "cache"

    def check(args):
        config, key = args
        storage.put(CONFIG_KEY, config)
        storage.put("keys/k1", key)
        repo = expect_typed(lambda: Repository.open(storage, KEYFILE, str(cache)), errors.RepositoryError)
        if repo is not None:
            repo.close()
        assert sorted(os.listdir(tmp_path)) in (["repo"], ["cache", "repo"])
        assert all(len(d) == 32 for d in (os.listdir(cache) if cache.exists() else []))
    pairs = st.one_of(st.tuples(mutated(st.just(CONFIG)), st.just(KEY_OBJECT)),
                      st.tuples(st.just(CONFIG), mutated(st.sampled_from([KEY_OBJECT, UNCHECKED]))))
    record_property("tries", fuzz(check, pairs))
    assert errors.RepositoryError.exit_code == 4


def test_damaged_passphrase_key_objects_never_run_scrypt_past_its_bound(record_property):
    """A key object's scrypt parameters are checked before use: KeyDamaged, never a memory error"""
    obj = json.loads(crypto.wrap_master_key(MASTER, KEYFILE))
    base = {**{k: v for k, v in obj.items() if k != "check"}, "kdf": "scrypt", "n": 2, "r": 1, "p": 1}

    def check(params):
        doc = json.dumps({**base, **params}).encode()
        expect_typed(lambda: crypto.unwrap_master_key(doc, crypto.Unlocker("passphrase", b"pw")),
                     errors.KeyDamaged, errors.WrongKey)
    big = st.one_of(st.integers(-2, 2**40), st.sampled_from([2**20, 2**24, 2**30, 2**62, 0, -1, True, 1.5, "8"]))
    record_property("tries", fuzz(check, st.fixed_dictionaries({"n": big, "r": big, "p": big}), fast=100,
                                  long=5_000))
