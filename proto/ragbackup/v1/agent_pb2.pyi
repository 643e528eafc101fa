from ragbackup.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ChunkerParams(_message.Message):
    __slots__ = ("min_size", "avg_size", "max_size", "seed")
    MIN_SIZE_FIELD_NUMBER: _ClassVar[int]
    AVG_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_SIZE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    min_size: int
    avg_size: int
    max_size: int
    seed: int
    def __init__(self, min_size: _Optional[int] = ..., avg_size: _Optional[int] = ..., max_size: _Optional[int] = ..., seed: _Optional[int] = ...) -> None: ...

class CaptureStart(_message.Message):
    __slots__ = ("component", "capture_id", "parent_capture_id", "id_key", "chunker", "compression_level", "full", "dictionary", "layouts", "joined_chunk_ids", "entry_parts")
    COMPONENT_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_CAPTURE_ID_FIELD_NUMBER: _ClassVar[int]
    ID_KEY_FIELD_NUMBER: _ClassVar[int]
    CHUNKER_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_LEVEL_FIELD_NUMBER: _ClassVar[int]
    FULL_FIELD_NUMBER: _ClassVar[int]
    DICTIONARY_FIELD_NUMBER: _ClassVar[int]
    LAYOUTS_FIELD_NUMBER: _ClassVar[int]
    JOINED_CHUNK_IDS_FIELD_NUMBER: _ClassVar[int]
    ENTRY_PARTS_FIELD_NUMBER: _ClassVar[int]
    component: _common_pb2.ComponentSpec
    capture_id: str
    parent_capture_id: str
    id_key: bytes
    chunker: ChunkerParams
    compression_level: int
    full: bool
    dictionary: bytes
    layouts: _containers.RepeatedScalarFieldContainer[str]
    joined_chunk_ids: bool
    entry_parts: bool
    def __init__(self, component: _Optional[_Union[_common_pb2.ComponentSpec, _Mapping]] = ..., capture_id: _Optional[str] = ..., parent_capture_id: _Optional[str] = ..., id_key: _Optional[bytes] = ..., chunker: _Optional[_Union[ChunkerParams, _Mapping]] = ..., compression_level: _Optional[int] = ..., full: _Optional[bool] = ..., dictionary: _Optional[bytes] = ..., layouts: _Optional[_Iterable[str]] = ..., joined_chunk_ids: _Optional[bool] = ..., entry_parts: _Optional[bool] = ...) -> None: ...

class ChunkWant(_message.Message):
    __slots__ = ("seq", "indexes")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    INDEXES_FIELD_NUMBER: _ClassVar[int]
    seq: int
    indexes: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, seq: _Optional[int] = ..., indexes: _Optional[_Iterable[int]] = ...) -> None: ...

class CaptureCommand(_message.Message):
    __slots__ = ("start", "want")
    START_FIELD_NUMBER: _ClassVar[int]
    WANT_FIELD_NUMBER: _ClassVar[int]
    start: CaptureStart
    want: ChunkWant
    def __init__(self, start: _Optional[_Union[CaptureStart, _Mapping]] = ..., want: _Optional[_Union[ChunkWant, _Mapping]] = ...) -> None: ...

class ChunkOffer(_message.Message):
    __slots__ = ("seq", "ids")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    ids: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, seq: _Optional[int] = ..., ids: _Optional[_Iterable[bytes]] = ...) -> None: ...

class CaptureStats(_message.Message):
    __slots__ = ("files", "dirs", "symlinks", "bytes_total", "bytes_read", "files_reused", "chunks_offered", "chunks_sent", "bytes_sent")
    FILES_FIELD_NUMBER: _ClassVar[int]
    DIRS_FIELD_NUMBER: _ClassVar[int]
    SYMLINKS_FIELD_NUMBER: _ClassVar[int]
    BYTES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    BYTES_READ_FIELD_NUMBER: _ClassVar[int]
    FILES_REUSED_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_OFFERED_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_SENT_FIELD_NUMBER: _ClassVar[int]
    BYTES_SENT_FIELD_NUMBER: _ClassVar[int]
    files: int
    dirs: int
    symlinks: int
    bytes_total: int
    bytes_read: int
    files_reused: int
    chunks_offered: int
    chunks_sent: int
    bytes_sent: int
    def __init__(self, files: _Optional[int] = ..., dirs: _Optional[int] = ..., symlinks: _Optional[int] = ..., bytes_total: _Optional[int] = ..., bytes_read: _Optional[int] = ..., files_reused: _Optional[int] = ..., chunks_offered: _Optional[int] = ..., chunks_sent: _Optional[int] = ..., bytes_sent: _Optional[int] = ...) -> None: ...

class CaptureDone(_message.Message):
    __slots__ = ("stats", "facts_json")
    STATS_FIELD_NUMBER: _ClassVar[int]
    FACTS_JSON_FIELD_NUMBER: _ClassVar[int]
    stats: CaptureStats
    facts_json: str
    def __init__(self, stats: _Optional[_Union[CaptureStats, _Mapping]] = ..., facts_json: _Optional[str] = ...) -> None: ...

class CaptureEvent(_message.Message):
    __slots__ = ("entries", "offer", "chunks", "done", "dictionary")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    OFFER_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    DICTIONARY_FIELD_NUMBER: _ClassVar[int]
    entries: _common_pb2.EntryBatch
    offer: ChunkOffer
    chunks: _common_pb2.ChunkBatch
    done: CaptureDone
    dictionary: bytes
    def __init__(self, entries: _Optional[_Union[_common_pb2.EntryBatch, _Mapping]] = ..., offer: _Optional[_Union[ChunkOffer, _Mapping]] = ..., chunks: _Optional[_Union[_common_pb2.ChunkBatch, _Mapping]] = ..., done: _Optional[_Union[CaptureDone, _Mapping]] = ..., dictionary: _Optional[bytes] = ...) -> None: ...

class RestoreStart(_message.Message):
    __slots__ = ("component", "target", "id_key", "snapshot_id", "facts_json", "force", "dictionaries")
    COMPONENT_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ID_KEY_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    FACTS_JSON_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    DICTIONARIES_FIELD_NUMBER: _ClassVar[int]
    component: _common_pb2.ComponentSpec
    target: str
    id_key: bytes
    snapshot_id: str
    facts_json: str
    force: bool
    dictionaries: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, component: _Optional[_Union[_common_pb2.ComponentSpec, _Mapping]] = ..., target: _Optional[str] = ..., id_key: _Optional[bytes] = ..., snapshot_id: _Optional[str] = ..., facts_json: _Optional[str] = ..., force: _Optional[bool] = ..., dictionaries: _Optional[_Iterable[bytes]] = ...) -> None: ...

class RestoreFinish(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RestoreCommand(_message.Message):
    __slots__ = ("start", "entries", "chunks", "finish")
    START_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    FINISH_FIELD_NUMBER: _ClassVar[int]
    start: RestoreStart
    entries: _common_pb2.EntryBatch
    chunks: _common_pb2.ChunkBatch
    finish: RestoreFinish
    def __init__(self, start: _Optional[_Union[RestoreStart, _Mapping]] = ..., entries: _Optional[_Union[_common_pb2.EntryBatch, _Mapping]] = ..., chunks: _Optional[_Union[_common_pb2.ChunkBatch, _Mapping]] = ..., finish: _Optional[_Union[RestoreFinish, _Mapping]] = ...) -> None: ...

class RestoreResult(_message.Message):
    __slots__ = ("files", "dirs", "symlinks", "bytes_written", "restored_path", "moved_aside", "mismatches", "fact_mismatches")
    FILES_FIELD_NUMBER: _ClassVar[int]
    DIRS_FIELD_NUMBER: _ClassVar[int]
    SYMLINKS_FIELD_NUMBER: _ClassVar[int]
    BYTES_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    RESTORED_PATH_FIELD_NUMBER: _ClassVar[int]
    MOVED_ASIDE_FIELD_NUMBER: _ClassVar[int]
    MISMATCHES_FIELD_NUMBER: _ClassVar[int]
    FACT_MISMATCHES_FIELD_NUMBER: _ClassVar[int]
    files: int
    dirs: int
    symlinks: int
    bytes_written: int
    restored_path: str
    moved_aside: str
    mismatches: _containers.RepeatedScalarFieldContainer[str]
    fact_mismatches: _containers.RepeatedCompositeFieldContainer[FactMismatch]
    def __init__(self, files: _Optional[int] = ..., dirs: _Optional[int] = ..., symlinks: _Optional[int] = ..., bytes_written: _Optional[int] = ..., restored_path: _Optional[str] = ..., moved_aside: _Optional[str] = ..., mismatches: _Optional[_Iterable[str]] = ..., fact_mismatches: _Optional[_Iterable[_Union[FactMismatch, _Mapping]]] = ...) -> None: ...

class FactMismatch(_message.Message):
    __slots__ = ("collection", "check", "expected", "found")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    collection: str
    check: str
    expected: str
    found: str
    def __init__(self, collection: _Optional[str] = ..., check: _Optional[str] = ..., expected: _Optional[str] = ..., found: _Optional[str] = ...) -> None: ...

class ServiceRequest(_message.Message):
    __slots__ = ("component", "action", "timeout_s")
    COMPONENT_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    component: _common_pb2.ComponentSpec
    action: str
    timeout_s: float
    def __init__(self, component: _Optional[_Union[_common_pb2.ComponentSpec, _Mapping]] = ..., action: _Optional[str] = ..., timeout_s: _Optional[float] = ...) -> None: ...

class ServiceReply(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: str
    def __init__(self, state: _Optional[str] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ("components",)
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    components: _containers.RepeatedCompositeFieldContainer[_common_pb2.ComponentSpec]
    def __init__(self, components: _Optional[_Iterable[_Union[_common_pb2.ComponentSpec, _Mapping]]] = ...) -> None: ...

class CheckResult(_message.Message):
    __slots__ = ("name", "ok", "detail")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    name: str
    ok: bool
    detail: str
    def __init__(self, name: _Optional[str] = ..., ok: _Optional[bool] = ..., detail: _Optional[str] = ...) -> None: ...

class HealthReply(_message.Message):
    __slots__ = ("version", "hostname", "uptime_s", "checks", "features")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    version: str
    hostname: str
    uptime_s: float
    checks: _containers.RepeatedCompositeFieldContainer[CheckResult]
    features: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, version: _Optional[str] = ..., hostname: _Optional[str] = ..., uptime_s: _Optional[float] = ..., checks: _Optional[_Iterable[_Union[CheckResult, _Mapping]]] = ..., features: _Optional[_Iterable[str]] = ...) -> None: ...

class DrillResult(_message.Message):
    __slots__ = ("files", "bytes_written", "checks", "seconds")
    FILES_FIELD_NUMBER: _ClassVar[int]
    BYTES_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    files: int
    bytes_written: int
    checks: _containers.RepeatedCompositeFieldContainer[CheckResult]
    seconds: float
    def __init__(self, files: _Optional[int] = ..., bytes_written: _Optional[int] = ..., checks: _Optional[_Iterable[_Union[CheckResult, _Mapping]]] = ..., seconds: _Optional[float] = ...) -> None: ...
