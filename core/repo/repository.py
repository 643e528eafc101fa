"""The repository: config, keys, blob reads, index sync and snapshot manifests.

In: a Storage backend and an Unlocker (passphrase or key file). Out: a
`Repository` that hands out `BlobWriter`s for backups (writer.py), reads blobs
and trees for restore and verify, and loads/saves snapshot manifests.
"""
from __future__ import annotations

import collections
import itertools
import json
import logging
import os
import re
import threading
import uuid
from concurrent import futures
from dataclasses import asdict, dataclass, fields, replace
from typing import Iterable, Iterator

import zstandard

from ragbackup import errors
from ragbackup.repo import chunking, crypto
from ragbackup.repo.dictionary import Dictionaries, dict_id
from ragbackup.repo.index import IndexCache, IndexEntries, read_index
from ragbackup.repo.manifest import Manifest
from ragbackup.repo.manifest import parse_document as manifest_doc
from ragbackup.repo.locate import Locator
from ragbackup.repo.packs import BlobLocation, blob_aad, pack_key, read_header, read_header_bytes, read_runs
from ragbackup.repo.tree import Entry, decode_lines
from ragbackup.storage.base import Storage

FORMAT_NAME = "rag-backup"
FORMAT_VERSION = 1
CONFIG_KEY = "config"
DICT_PREFIX = "dicts/"
READ_SPAN = 1024 * 1024  # bytes of back-to-back blobs read_payloads fetches at once
READ_LOOKUP = 2000  # ids read_payloads locates at once
INDEX_FETCH = 4  # index objects sync_index fetches and opens at once

log = logging.getLogger("ragbackup.repo")


@dataclass(frozen=True)
class RepoParams:
    """Parameters fixed at `init` and stored in the plaintext `config` object."""

    pack_size: int = 32 * chunking.MiB
    compression_level: int = 3
    chunk_min: int = 256 * 1024
    chunk_avg: int = 768 * 1024
    chunk_max: int = 4 * chunking.MiB


_REPO_ID = re.compile(r"[0-9a-f]{32}")


def _read_config(storage: Storage) -> dict:
    """The plaintext `config` object, checked: RepositoryNotFound, UnsupportedFormat, or
    RepositoryError when it is damaged (not JSON, or fields of the wrong type)."""
    try:
        config = json.loads(storage.get(CONFIG_KEY))
    except errors.NotFound:
        raise errors.RepositoryNotFound(
            f"no repository at {storage.describe()} (run `ragctl init` first)") from None
    except (ValueError, RecursionError):
        config = None
    if not isinstance(config, dict):
        raise errors.RepositoryError(f"{storage.describe()}: the repository's config object is damaged "
                                     "(not a JSON object)")
    if config.get("format") != FORMAT_NAME or config.get("version") != FORMAT_VERSION:
        raise errors.UnsupportedFormat(
            f"{storage.describe()}: format {config.get('format')!r} version {config.get('version')!r} "
            f"is not {FORMAT_NAME} version {FORMAT_VERSION}")
    params = config.get("params")
    names = {f.name for f in fields(RepoParams)}
    # the id names the index cache's directory: a hostile one must not lead out of the cache dir
    if not (isinstance(config.get("id"), str) and _REPO_ID.fullmatch(config["id"])
            and isinstance(params, dict) and set(params) <= names
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in params.values())):
        raise errors.RepositoryError(f"{storage.describe()}: the repository's config object is damaged "
                                     "(id or params of the wrong type)")
    return config


class Repository:
    """An opened repository. Thread-safe for concurrent reads and one writer per job."""

    def __init__(self, storage: Storage, master: crypto.MasterKey, repo_id: str, params: RepoParams,
                 cache_dir: str):
        self.storage = storage
        self.id = repo_id
        self.params = params
        self.master = master  # a copy of this repository on another storage opens with it (Repositories.target)
        self.cipher = crypto.Cipher(master)
        self.id_key = master.id_key
        self.chunker = chunking.ChunkerParams(params.chunk_min, params.chunk_avg, params.chunk_max,
                                              master.chunker_seed)
        self.tree_chunker = replace(self.chunker, min_size=64 * 1024, avg_size=192 * 1024,
                                    max_size=1024 * 1024)
        self.cache_dir = os.path.join(cache_dir, repo_id)
        self.index = IndexCache(os.path.join(self.cache_dir, "index.sqlite"))
        self._dicts: Dictionaries | None = None
        self._dicts_lock = threading.Lock()

    # --- lifecycle -------------------------------------------------------------------

    @classmethod
    def init(cls, storage: Storage, unlocker: crypto.Unlocker, cache_dir: str,
             params: RepoParams = RepoParams()) -> "Repository":
        """Create a new repository; RepositoryExists if `config` is already there."""
        if storage.exists(CONFIG_KEY):
            raise errors.RepositoryExists(f"a repository already exists at {storage.describe()}")
        master = crypto.MasterKey.generate()
        repo_id = uuid.uuid4().hex
        storage.put(f"keys/{uuid.uuid4().hex}", crypto.wrap_master_key(master, unlocker))
        config = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "id": repo_id, "params": asdict(params)}
        storage.put(CONFIG_KEY, json.dumps(config, indent=1).encode())
        return cls(storage, master, repo_id, params, cache_dir)

    @classmethod
    def open(cls, storage: Storage, unlocker: crypto.Unlocker, cache_dir: str) -> "Repository":
        """Open an existing repository; RepositoryNotFound / UnsupportedFormat / WrongKey."""
        config = _read_config(storage)
        master = cls._unlock(storage, unlocker)
        return cls(storage, master, config["id"], RepoParams(**config["params"]), cache_dir)

    @classmethod
    def unlock_master(cls, storage: Storage, unlocker: crypto.Unlocker) -> crypto.MasterKey:
        """The master key of the repository in `storage` (its copy on another storage shares it)."""
        return cls._unlock(storage, unlocker)

    @staticmethod
    def _unlock(storage: Storage, unlocker: crypto.Unlocker) -> crypto.MasterKey:
        """The master key from the first key object `unlocker` opens.

        KeyDamaged when none opens and one is damaged (a damaged key is no wrong
        passphrase); WrongKey naming where the secret came from otherwise.
        """
        keys = sorted(o.key for o in storage.list("keys/"))
        if not keys:
            raise errors.RepositoryError(f"{storage.describe()}: the repository has no keys")
        damaged: list[errors.KeyDamaged] = []
        for key in keys:
            try:
                return crypto.unwrap_master_key(storage.get(key), unlocker, key)
            except errors.KeyDamaged as exc:
                log.warning("%s", exc.message)
                damaged.append(exc)
            except errors.WrongKey:
                continue
        if damaged:
            others = (f"; {unlocker.describe()} opens none of the other {len(keys) - len(damaged)} key(s)"
                      if len(keys) > len(damaged) else "")
            raise errors.KeyDamaged("; ".join(d.message for d in damaged) + others)
        raise errors.WrongKey(f"{unlocker.describe()} does not open any key of the repository at "
                              f"{storage.describe()} (wrong passphrase or key file)")

    def add_key(self, unlocker: crypto.Unlocker, master: crypto.MasterKey) -> str:
        name = f"keys/{uuid.uuid4().hex}"
        self.storage.put(name, crypto.wrap_master_key(master, unlocker))
        return name

    def close(self) -> None:
        self.index.close()

    # --- index -----------------------------------------------------------------------

    def sync_index(self) -> int:
        """Bring the local index cache in line with `index/` in storage; returns files loaded.

        An index object that fails to open is skipped with a warning and recorded as
        damaged; while any is, stored packs no readable index object names are described
        from their own headers (`recover_packs`), so every other blob stays readable.
        """
        stored = {o.key.split("/", 1)[1] for o in self.storage.list("index/")}
        damaged = self.index.damaged_index_files()
        known = self.index.known_index_files() | set(damaged)
        for name in known - stored:
            self.index.forget_index_file(name)
        loaded = 0
        for name, entries in self._opened_indexes(sorted(stored - known)):
            if entries is None:
                continue  # deleted since the listing (a repair finishing)
            if isinstance(entries, errors.IntegrityError):
                log.warning("%s: skipped; its packs are described from their own headers", entries.message)
                self.index.mark_damaged(name, entries.message)
                continue
            self.index.add_index_file(name, entries)
            loaded += 1
        if self.index.damaged_index_files():
            self.recover_packs()
        return loaded

    def _opened_indexes(self, names: list[str]) -> Iterator[tuple[str, IndexEntries | errors.IntegrityError | None]]:
        """(name, its entries) of each index object `names` lists, in that order; the entries are the
        IntegrityError when the object fails to open, None when it vanished since the listing.

        INDEX_FETCH objects are fetched and opened at once on threads of their own while the caller
        records the previous ones: a new state's cache rebuilt from a tier waits on the network, the
        decryption and SQLite together rather than one after the other. Other storage errors are
        raised at the object they concern.
        """
        def one(name: str) -> IndexEntries | errors.IntegrityError | None:
            try:
                return read_index(self.cipher, name, self.storage.get(f"index/{name}"))
            except errors.NotFound:
                return None
            except errors.IntegrityError as exc:
                return exc

        todo = iter(names)
        with futures.ThreadPoolExecutor(INDEX_FETCH, thread_name_prefix="index-fetch") as pool:
            window = collections.deque((n, pool.submit(one, n)) for n in itertools.islice(todo, INDEX_FETCH))
            try:
                while window:
                    name, opened = window.popleft()
                    following = next(todo, None)
                    if following is not None:
                        window.append((following, pool.submit(one, following)))
                    yield name, opened.result()
            finally:
                for _, pending in window:
                    pending.cancel()

    def recover_packs(self) -> list[str]:
        """Describe every stored pack no loaded index object names from its own header; returns their ids.

        A pack whose header cannot be read is left out with a warning (verify names it).
        """
        indexed = self.index.pack_index_files()
        recovered = []
        for obj in self.storage.list("data/"):
            pid = obj.key.rsplit("/", 1)[-1]
            if pid in indexed or pid.startswith("."):
                continue
            try:
                locs = read_header(self.storage, self.cipher, pid, obj.size)
            except errors.IntegrityError as exc:
                log.warning("%s: its blobs cannot be located", exc.message)
                continue
            self.index.add_recovered_pack(pid, obj.size, locs)
            recovered.append(pid)
        if recovered:
            log.warning("described %d pack(s) from their own headers (no readable index object names them)",
                        len(recovered))
        return recovered

    def rebuild_index(self) -> int:
        self.index.clear()
        return self.sync_index()

    # --- blobs -----------------------------------------------------------------------

    def locate(self, blob_id: bytes) -> BlobLocation:
        loc = self.index.lookup(blob_id)
        if loc is None:
            raise errors.IntegrityError(f"blob {blob_id.hex()} is referenced but not in the index")
        return loc

    def read_payload(self, blob_id: bytes) -> tuple[bytes, BlobLocation]:
        """Decrypted (possibly compressed) payload of a blob and its location."""
        loc = self.locate(blob_id)
        return self._open_blob(self.storage.get_range(pack_key(loc.pack), loc.offset, loc.length), loc), loc

    def read_payloads(self, blob_ids: list[bytes], locator: Locator | None = None) -> Iterator[tuple[bytes, BlobLocation]]:
        """Decrypted payloads of `blob_ids`, in order, with their locations.

        Locations are found READ_LOOKUP ids at a time by `locator` (one per reader; a new one
        when None): the index, then the headers of packs a lookup found many ids in, so a run
        of small chunks costs one header read, not an index query each. Blobs lying back to
        back in a pack are read with one range request (up to READ_SPAN bytes): restores and
        checks read chunks in the order backups wrote them, so most reads merge. A file of a
        hundred thousand chunks costs no more memory than a small one.
        """
        where = locator or self.locator()
        for i in range(0, len(blob_ids), READ_LOOKUP):
            yield from self._read_located(where.locate(blob_ids[i:i + READ_LOOKUP]))

    def locator(self) -> Locator:
        """A Locator over this repository's index and pack headers, for one reader."""
        return Locator(self.index, lambda pack, size: read_header_bytes(self.storage, self.cipher, pack, size))

    def _read_located(self, locs: list[BlobLocation]) -> Iterator[tuple[bytes, BlobLocation]]:
        for run in read_runs(locs, READ_SPAN):
            first = run[0]
            span = run[-1].offset + run[-1].length - first.offset
            data = memoryview(self.storage.get_range(pack_key(first.pack), first.offset, span))
            for loc in run:
                sealed = data[loc.offset - first.offset:loc.offset - first.offset + loc.length]
                try:
                    opened = self._open_blob(sealed, loc), loc
                except errors.IntegrityError:
                    opened = self._read_indexed_copy(loc)
                yield opened

    def _read_indexed_copy(self, failed: BlobLocation) -> tuple[bytes, BlobLocation]:
        """The blob at the index's location when it is not `failed` (a header placed the blob in a
        pack whose copy is damaged; a repair stored it again elsewhere); else the failure, raised."""
        loc = self.index.lookup(failed.id)
        if loc is None or loc == failed:
            raise errors.IntegrityError(f"pack {failed.pack}: blob {failed.id.hex()} failed authentication")
        return self._open_blob(self.storage.get_range(pack_key(loc.pack), loc.offset, loc.length), loc), loc

    def _open_blob(self, sealed: bytes | memoryview, loc: BlobLocation) -> bytes:
        try:
            return self.cipher.open(sealed, blob_aad(loc.id))
        except errors.IntegrityError:
            raise errors.IntegrityError(f"pack {loc.pack}: blob {loc.id.hex()} failed authentication") from None

    def read_blob(self, blob_id: bytes) -> bytes:
        """Plaintext of a blob, its id checked."""
        payload, loc = self.read_payload(blob_id)
        data = chunking.decompress(payload, loc.compressed, loc.raw_length, self.dictionaries())
        if crypto.chunk_id(self.id_key, data) != blob_id:
            raise errors.IntegrityError(f"pack {loc.pack}: blob {blob_id.hex()} does not match its id")
        return data

    def read_tree(self, tree_ids: Iterable[bytes], spill: str | None = None) -> Iterator[Entry]:
        """Entries of a component tree, streamed blob by blob; with `spill` (a directory), an entry
        of more than tree.SPILL_AFTER bytes of ids gets them as a SpilledIds in a file there."""
        return decode_lines((self.read_blob(t) for t in tree_ids), spill)

    # --- compression dictionaries (dictionary.py) --------------------------------------

    def dictionaries(self, reload: bool = False) -> Dictionaries:
        """Every dictionary in `dicts/`, loaded once (again with `reload`).

        IntegrityError names one that fails authentication.
        """
        with self._dicts_lock:
            if self._dicts is None or reload:
                self._dicts = None
                self._dicts = Dictionaries(self._load_dictionary(o.key) for o in self.storage.list(DICT_PREFIX))
            return self._dicts

    def current_dictionary(self) -> bytes | None:
        """The dictionary new captures compress small chunks with (the lowest id), or None."""
        stored = self.dictionaries().all()
        return stored[0] if stored else None

    def save_dictionary(self, data: bytes) -> int:
        """Store a dictionary (durable on return) unless already held; returns its id.

        IntegrityError if `data` is no dictionary, or another one holds its id.
        """
        did = dict_id(data)
        dicts = self.dictionaries()
        if did in dicts:
            if dicts.get(did) != data:
                raise errors.IntegrityError(f"a different compression dictionary already has id {did}")
            return did
        key = f"{DICT_PREFIX}{did:08x}"
        self.storage.put(key, bytes(self.cipher.seal(data, key.encode())))
        with self._dicts_lock:
            dicts.add(data)
        return did

    def _load_dictionary(self, key: str) -> bytes:
        try:
            return self.cipher.open(self.storage.get(key), key.encode())
        except errors.IntegrityError:
            raise errors.IntegrityError(f"compression dictionary {key} failed authentication") from None

    # --- snapshots -------------------------------------------------------------------

    def save_snapshot(self, manifest: dict) -> None:
        """Write a snapshot manifest; call only after its packs and index are durable."""
        sid = manifest["id"]
        data = zstandard.compress(json.dumps(manifest, separators=(",", ":")).encode(), 3)
        self.storage.put(f"snapshots/{sid}", bytes(self.cipher.seal(data, b"snapshot:" + sid.encode())))

    def load_snapshot(self, sid: str) -> dict:
        try:
            sealed = self.storage.get(f"snapshots/{sid}")
        except errors.NotFound:
            raise errors.NotFound(f"no snapshot {sid!r} in {self.storage.describe()}") from None
        try:
            plain = self.cipher.open(sealed, b"snapshot:" + sid.encode())
        except errors.IntegrityError:
            raise errors.IntegrityError(f"snapshot {sid}: manifest failed authentication") from None
        try:
            doc = zstandard.decompress(plain)
        except zstandard.ZstdError:
            raise errors.IntegrityError(f"snapshot {sid}: its manifest does not decompress") from None
        return manifest_doc(doc, sid)

    def save_manifest(self, manifest: Manifest) -> None:
        self.save_snapshot(manifest.to_dict())

    def load_manifest(self, sid: str) -> Manifest:
        return Manifest.from_dict(self.load_snapshot(sid))

    def snapshot_ids(self) -> list[str]:
        return sorted(o.key.split("/", 1)[1] for o in self.storage.list("snapshots/"))

    def delete_snapshot(self, sid: str) -> None:
        self.storage.delete(f"snapshots/{sid}")
