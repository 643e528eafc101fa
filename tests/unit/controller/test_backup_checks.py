"""The controller's checks on what an agent sends during a capture."""
import pytest

from ragbackup import errors
from ragbackup.controller.backup import _Capture, _check_dictionary
from ragbackup.repo import chunking, dictionary
from ragbackup.repo.crypto import Unlocker
from ragbackup.repo.repository import Repository
from ragbackup.storage import LocalStorage
from ragbackup.v1 import agent_pb2

from fixtures.sqlite_db import make_db


def test_chunk_naming_an_unknown_dictionary_is_refused(tmp_path):
    db = make_db(str(tmp_path / "s.sqlite3"))
    with open(db, "rb") as f:
        d = dictionary.train_from_file(f.fileno(), len(f.read()), 16384)
    payload, compressed = chunking.Compressor(3, d).compress(b"tenant t3, page 17 " * 500)
    assert compressed
    _check_dictionary(payload, dictionary.Dictionaries([d]))
    _check_dictionary(chunking.Compressor(3).compress(b"no dictionary " * 500)[0], dictionary.Dictionaries())
    with pytest.raises(errors.IntegrityError, match="which it did not send"):
        _check_dictionary(payload, dictionary.Dictionaries())
    with pytest.raises(errors.IntegrityError, match="not a zstd frame"):
        _check_dictionary(b"\x00" * 40, dictionary.Dictionaries())


def test_only_one_dictionary_and_only_when_none_was_given(tmp_path):
    db = make_db(str(tmp_path / "s.sqlite3"))
    with open(db, "rb") as f:
        d = dictionary.train_from_file(f.fileno(), len(f.read()), 16384)
    repo = Repository.init(LocalStorage(str(tmp_path / "repo")), Unlocker("passphrase", b"pw"), str(tmp_path / "c"))
    event = agent_pb2.CaptureEvent(dictionary=d)
    cap = _Capture(repo, None, None, may_train=True)
    cap.handle(event)
    assert repo.current_dictionary() == d
    with pytest.raises(errors.IntegrityError, match="not to train"):
        cap.handle(event)
    with pytest.raises(errors.IntegrityError, match="not to train"):
        _Capture(repo, None, None, may_train=False).handle(event)
    repo.close()
