from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EntryType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENTRY_TYPE_UNSPECIFIED: _ClassVar[EntryType]
    ENTRY_TYPE_FILE: _ClassVar[EntryType]
    ENTRY_TYPE_DIR: _ClassVar[EntryType]
    ENTRY_TYPE_SYMLINK: _ClassVar[EntryType]
    ENTRY_TYPE_HARDLINK: _ClassVar[EntryType]

class Consistency(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONSISTENCY_UNSPECIFIED: _ClassVar[Consistency]
    CONSISTENCY_ONLINE: _ClassVar[Consistency]
    CONSISTENCY_PAUSE: _ClassVar[Consistency]
    CONSISTENCY_STOP: _ClassVar[Consistency]
ENTRY_TYPE_UNSPECIFIED: EntryType
ENTRY_TYPE_FILE: EntryType
ENTRY_TYPE_DIR: EntryType
ENTRY_TYPE_SYMLINK: EntryType
ENTRY_TYPE_HARDLINK: EntryType
CONSISTENCY_UNSPECIFIED: Consistency
CONSISTENCY_ONLINE: Consistency
CONSISTENCY_PAUSE: Consistency
CONSISTENCY_STOP: Consistency

class Entry(_message.Message):
    __slots__ = ("path", "type", "mode", "uid", "gid", "mtime_ns", "size", "chunks", "target", "holes", "layout", "chunk_ids", "more_chunk_ids")
    PATH_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    MTIME_NS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    HOLES_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    CHUNK_IDS_FIELD_NUMBER: _ClassVar[int]
    MORE_CHUNK_IDS_FIELD_NUMBER: _ClassVar[int]
    path: bytes
    type: EntryType
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    size: int
    chunks: _containers.RepeatedScalarFieldContainer[bytes]
    target: bytes
    holes: _containers.RepeatedScalarFieldContainer[int]
    layout: str
    chunk_ids: bytes
    more_chunk_ids: bool
    def __init__(self, path: _Optional[bytes] = ..., type: _Optional[_Union[EntryType, str]] = ..., mode: _Optional[int] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ..., mtime_ns: _Optional[int] = ..., size: _Optional[int] = ..., chunks: _Optional[_Iterable[bytes]] = ..., target: _Optional[bytes] = ..., holes: _Optional[_Iterable[int]] = ..., layout: _Optional[str] = ..., chunk_ids: _Optional[bytes] = ..., more_chunk_ids: _Optional[bool] = ...) -> None: ...

class EntryBatch(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[Entry]
    def __init__(self, entries: _Optional[_Iterable[_Union[Entry, _Mapping]]] = ...) -> None: ...

class Chunk(_message.Message):
    __slots__ = ("id", "payload", "compressed", "raw_size")
    ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    COMPRESSED_FIELD_NUMBER: _ClassVar[int]
    RAW_SIZE_FIELD_NUMBER: _ClassVar[int]
    id: bytes
    payload: bytes
    compressed: bool
    raw_size: int
    def __init__(self, id: _Optional[bytes] = ..., payload: _Optional[bytes] = ..., compressed: _Optional[bool] = ..., raw_size: _Optional[int] = ...) -> None: ...

class ChunkBatch(_message.Message):
    __slots__ = ("chunks",)
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    chunks: _containers.RepeatedCompositeFieldContainer[Chunk]
    def __init__(self, chunks: _Optional[_Iterable[_Union[Chunk, _Mapping]]] = ...) -> None: ...

class ComponentSpec(_message.Message):
    __slots__ = ("name", "kind", "path", "exclude", "paths", "redis", "chroma")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_FIELD_NUMBER: _ClassVar[int]
    PATHS_FIELD_NUMBER: _ClassVar[int]
    REDIS_FIELD_NUMBER: _ClassVar[int]
    CHROMA_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    path: str
    exclude: _containers.RepeatedScalarFieldContainer[str]
    paths: PathsOptions
    redis: RedisOptions
    chroma: ChromaOptions
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., path: _Optional[str] = ..., exclude: _Optional[_Iterable[str]] = ..., paths: _Optional[_Union[PathsOptions, _Mapping]] = ..., redis: _Optional[_Union[RedisOptions, _Mapping]] = ..., chroma: _Optional[_Union[ChromaOptions, _Mapping]] = ...) -> None: ...

class PathsOptions(_message.Message):
    __slots__ = ("service", "container", "container_path")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_PATH_FIELD_NUMBER: _ClassVar[int]
    service: str
    container: str
    container_path: str
    def __init__(self, service: _Optional[str] = ..., container: _Optional[str] = ..., container_path: _Optional[str] = ...) -> None: ...

class Owner(_message.Message):
    __slots__ = ("uid", "gid")
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    uid: int
    gid: int
    def __init__(self, uid: _Optional[int] = ..., gid: _Optional[int] = ...) -> None: ...

class RedisOptions(_message.Message):
    __slots__ = ("common", "host", "port", "password", "password_file", "username", "tls", "tls_ca", "tls_cert", "tls_key", "rdb_filename", "owner", "timeout_s")
    COMMON_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FILE_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    TLS_FIELD_NUMBER: _ClassVar[int]
    TLS_CA_FIELD_NUMBER: _ClassVar[int]
    TLS_CERT_FIELD_NUMBER: _ClassVar[int]
    TLS_KEY_FIELD_NUMBER: _ClassVar[int]
    RDB_FILENAME_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    common: PathsOptions
    host: str
    port: int
    password: str
    password_file: str
    username: str
    tls: bool
    tls_ca: str
    tls_cert: str
    tls_key: str
    rdb_filename: str
    owner: Owner
    timeout_s: float
    def __init__(self, common: _Optional[_Union[PathsOptions, _Mapping]] = ..., host: _Optional[str] = ..., port: _Optional[int] = ..., password: _Optional[str] = ..., password_file: _Optional[str] = ..., username: _Optional[str] = ..., tls: _Optional[bool] = ..., tls_ca: _Optional[str] = ..., tls_cert: _Optional[str] = ..., tls_key: _Optional[str] = ..., rdb_filename: _Optional[str] = ..., owner: _Optional[_Union[Owner, _Mapping]] = ..., timeout_s: _Optional[float] = ...) -> None: ...

class ChromaOptions(_message.Message):
    __slots__ = ("common", "url", "tenant", "database", "owner", "probes", "top_k", "timeout_s", "consistency")
    COMMON_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    DATABASE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    PROBES_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    common: PathsOptions
    url: str
    tenant: str
    database: str
    owner: Owner
    probes: int
    top_k: int
    timeout_s: float
    consistency: Consistency
    def __init__(self, common: _Optional[_Union[PathsOptions, _Mapping]] = ..., url: _Optional[str] = ..., tenant: _Optional[str] = ..., database: _Optional[str] = ..., owner: _Optional[_Union[Owner, _Mapping]] = ..., probes: _Optional[int] = ..., top_k: _Optional[int] = ..., timeout_s: _Optional[float] = ..., consistency: _Optional[_Union[Consistency, str]] = ...) -> None: ...
