from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BackupMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BACKUP_MODE_UNSPECIFIED: _ClassVar[BackupMode]
    BACKUP_MODE_FULL: _ClassVar[BackupMode]
    BACKUP_MODE_INCREMENTAL: _ClassVar[BackupMode]
BACKUP_MODE_UNSPECIFIED: BackupMode
BACKUP_MODE_FULL: BackupMode
BACKUP_MODE_INCREMENTAL: BackupMode

class ExportRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ExportChunk(_message.Message):
    __slots__ = ("data", "filename")
    DATA_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    filename: str
    def __init__(self, data: _Optional[bytes] = ..., filename: _Optional[str] = ...) -> None: ...

class ImportChunk(_message.Message):
    __slots__ = ("data", "filename", "reason")
    DATA_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    filename: str
    reason: str
    def __init__(self, data: _Optional[bytes] = ..., filename: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ImportReply(_message.Message):
    __slots__ = ("snapshot_id", "details_json")
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    snapshot_id: str
    details_json: str
    def __init__(self, snapshot_id: _Optional[str] = ..., details_json: _Optional[str] = ...) -> None: ...

class InitRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InitReply(_message.Message):
    __slots__ = ("repository", "repository_id")
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    REPOSITORY_ID_FIELD_NUMBER: _ClassVar[int]
    repository: str
    repository_id: str
    def __init__(self, repository: _Optional[str] = ..., repository_id: _Optional[str] = ...) -> None: ...

class BackupRequest(_message.Message):
    __slots__ = ("mode", "components", "reason", "scheduled")
    MODE_FIELD_NUMBER: _ClassVar[int]
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_FIELD_NUMBER: _ClassVar[int]
    mode: BackupMode
    components: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    scheduled: bool
    def __init__(self, mode: _Optional[_Union[BackupMode, str]] = ..., components: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ..., scheduled: _Optional[bool] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("phase", "done", "total", "unit")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    phase: str
    done: int
    total: int
    unit: str
    def __init__(self, phase: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., unit: _Optional[str] = ...) -> None: ...

class JobResult(_message.Message):
    __slots__ = ("summary", "details_json")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    summary: str
    details_json: str
    def __init__(self, summary: _Optional[str] = ..., details_json: _Optional[str] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("progress", "log", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: Progress
    log: str
    result: JobResult
    def __init__(self, progress: _Optional[_Union[Progress, _Mapping]] = ..., log: _Optional[str] = ..., result: _Optional[_Union[JobResult, _Mapping]] = ...) -> None: ...

class ListSnapshotsRequest(_message.Message):
    __slots__ = ("components", "tier", "as_of")
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    components: _containers.RepeatedScalarFieldContainer[str]
    tier: str
    as_of: str
    def __init__(self, components: _Optional[_Iterable[str]] = ..., tier: _Optional[str] = ..., as_of: _Optional[str] = ...) -> None: ...

class SnapshotSummary(_message.Message):
    __slots__ = ("id", "time", "kind", "reason", "components", "files", "bytes_total", "bytes_added", "host")
    ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    BYTES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    BYTES_ADDED_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    id: str
    time: str
    kind: str
    reason: str
    components: _containers.RepeatedScalarFieldContainer[str]
    files: int
    bytes_total: int
    bytes_added: int
    host: str
    def __init__(self, id: _Optional[str] = ..., time: _Optional[str] = ..., kind: _Optional[str] = ..., reason: _Optional[str] = ..., components: _Optional[_Iterable[str]] = ..., files: _Optional[int] = ..., bytes_total: _Optional[int] = ..., bytes_added: _Optional[int] = ..., host: _Optional[str] = ...) -> None: ...

class ListSnapshotsReply(_message.Message):
    __slots__ = ("snapshots", "warnings", "restore_times", "rto_s")
    SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    RESTORE_TIMES_FIELD_NUMBER: _ClassVar[int]
    RTO_S_FIELD_NUMBER: _ClassVar[int]
    snapshots: _containers.RepeatedCompositeFieldContainer[SnapshotSummary]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    restore_times: _containers.RepeatedCompositeFieldContainer[RestoreTime]
    rto_s: float
    def __init__(self, snapshots: _Optional[_Iterable[_Union[SnapshotSummary, _Mapping]]] = ..., warnings: _Optional[_Iterable[str]] = ..., restore_times: _Optional[_Iterable[_Union[RestoreTime, _Mapping]]] = ..., rto_s: _Optional[float] = ...) -> None: ...

class ShowSnapshotRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ShowSnapshotReply(_message.Message):
    __slots__ = ("manifest_json",)
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    manifest_json: str
    def __init__(self, manifest_json: _Optional[str] = ...) -> None: ...

class RestoreRequest(_message.Message):
    __slots__ = ("id", "components", "target", "dry_run", "force", "agent", "source", "as_of")
    ID_FIELD_NUMBER: _ClassVar[int]
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    id: str
    components: _containers.RepeatedScalarFieldContainer[str]
    target: str
    dry_run: bool
    force: bool
    agent: str
    source: str
    as_of: str
    def __init__(self, id: _Optional[str] = ..., components: _Optional[_Iterable[str]] = ..., target: _Optional[str] = ..., dry_run: _Optional[bool] = ..., force: _Optional[bool] = ..., agent: _Optional[str] = ..., source: _Optional[str] = ..., as_of: _Optional[str] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("read_data",)
    READ_DATA_FIELD_NUMBER: _ClassVar[int]
    read_data: bool
    def __init__(self, read_data: _Optional[bool] = ...) -> None: ...

class DiffRequest(_message.Message):
    __slots__ = ("id1", "id2")
    ID1_FIELD_NUMBER: _ClassVar[int]
    ID2_FIELD_NUMBER: _ClassVar[int]
    id1: str
    id2: str
    def __init__(self, id1: _Optional[str] = ..., id2: _Optional[str] = ...) -> None: ...

class DiffItem(_message.Message):
    __slots__ = ("change", "component", "path", "detail")
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    COMPONENT_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    change: str
    component: str
    path: str
    detail: str
    def __init__(self, change: _Optional[str] = ..., component: _Optional[str] = ..., path: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class DiffReply(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[DiffItem]
    def __init__(self, items: _Optional[_Iterable[_Union[DiffItem, _Mapping]]] = ...) -> None: ...

class RebuildCatalogRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ControllerHealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthCheck(_message.Message):
    __slots__ = ("name", "ok", "detail")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    name: str
    ok: bool
    detail: str
    def __init__(self, name: _Optional[str] = ..., ok: _Optional[bool] = ..., detail: _Optional[str] = ...) -> None: ...

class ControllerHealthReply(_message.Message):
    __slots__ = ("healthy", "details_json", "checks")
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    healthy: bool
    details_json: str
    checks: _containers.RepeatedCompositeFieldContainer[HealthCheck]
    def __init__(self, healthy: _Optional[bool] = ..., details_json: _Optional[str] = ..., checks: _Optional[_Iterable[_Union[HealthCheck, _Mapping]]] = ...) -> None: ...

class RepairIndexRequest(_message.Message):
    __slots__ = ("dry_run",)
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    dry_run: bool
    def __init__(self, dry_run: _Optional[bool] = ...) -> None: ...

class JobInfo(_message.Message):
    __slots__ = ("id", "kind", "trigger", "caller", "components", "snapshot", "started", "finished", "result", "error_class", "error_message", "bytes_read", "bytes_sent", "bytes_added", "files", "summary", "repository", "progress", "bytes_total")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_CLASS_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    BYTES_READ_FIELD_NUMBER: _ClassVar[int]
    BYTES_SENT_FIELD_NUMBER: _ClassVar[int]
    BYTES_ADDED_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    BYTES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    id: int
    kind: str
    trigger: str
    caller: str
    components: _containers.RepeatedScalarFieldContainer[str]
    snapshot: str
    started: str
    finished: str
    result: str
    error_class: str
    error_message: str
    bytes_read: int
    bytes_sent: int
    bytes_added: int
    files: int
    summary: str
    repository: str
    progress: Progress
    bytes_total: int
    def __init__(self, id: _Optional[int] = ..., kind: _Optional[str] = ..., trigger: _Optional[str] = ..., caller: _Optional[str] = ..., components: _Optional[_Iterable[str]] = ..., snapshot: _Optional[str] = ..., started: _Optional[str] = ..., finished: _Optional[str] = ..., result: _Optional[str] = ..., error_class: _Optional[str] = ..., error_message: _Optional[str] = ..., bytes_read: _Optional[int] = ..., bytes_sent: _Optional[int] = ..., bytes_added: _Optional[int] = ..., files: _Optional[int] = ..., summary: _Optional[str] = ..., repository: _Optional[str] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., bytes_total: _Optional[int] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("kind", "limit")
    KIND_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    kind: str
    limit: int
    def __init__(self, kind: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListJobsReply(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[JobInfo]
    def __init__(self, jobs: _Optional[_Iterable[_Union[JobInfo, _Mapping]]] = ...) -> None: ...

class ShowJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class ShowJobReply(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: JobInfo
    def __init__(self, job: _Optional[_Union[JobInfo, _Mapping]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusReply(_message.Message):
    __slots__ = ("status_json", "safe")
    STATUS_JSON_FIELD_NUMBER: _ClassVar[int]
    SAFE_FIELD_NUMBER: _ClassVar[int]
    status_json: str
    safe: bool
    def __init__(self, status_json: _Optional[str] = ..., safe: _Optional[bool] = ...) -> None: ...

class DrillRequest(_message.Message):
    __slots__ = ("id", "agent", "source")
    ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    id: str
    agent: str
    source: str
    def __init__(self, id: _Optional[str] = ..., agent: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class ForgetRequest(_message.Message):
    __slots__ = ("ids", "dry_run", "tier")
    IDS_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    dry_run: bool
    tier: str
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., dry_run: _Optional[bool] = ..., tier: _Optional[str] = ...) -> None: ...

class PruneRequest(_message.Message):
    __slots__ = ("dry_run", "max_repack", "tier")
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    MAX_REPACK_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    dry_run: bool
    max_repack: int
    tier: str
    def __init__(self, dry_run: _Optional[bool] = ..., max_repack: _Optional[int] = ..., tier: _Optional[str] = ...) -> None: ...

class ReplicateRequest(_message.Message):
    __slots__ = ("tier",)
    TIER_FIELD_NUMBER: _ClassVar[int]
    tier: str
    def __init__(self, tier: _Optional[str] = ...) -> None: ...

class RestoreTime(_message.Message):
    __slots__ = ("snapshot", "storage_classes", "wait", "wait_max_s", "slower_than_rto")
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    STORAGE_CLASSES_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    WAIT_MAX_S_FIELD_NUMBER: _ClassVar[int]
    SLOWER_THAN_RTO_FIELD_NUMBER: _ClassVar[int]
    snapshot: str
    storage_classes: _containers.RepeatedScalarFieldContainer[str]
    wait: str
    wait_max_s: float
    slower_than_rto: bool
    def __init__(self, snapshot: _Optional[str] = ..., storage_classes: _Optional[_Iterable[str]] = ..., wait: _Optional[str] = ..., wait_max_s: _Optional[float] = ..., slower_than_rto: _Optional[bool] = ...) -> None: ...

class InitTierRequest(_message.Message):
    __slots__ = ("tier",)
    TIER_FIELD_NUMBER: _ClassVar[int]
    tier: str
    def __init__(self, tier: _Optional[str] = ...) -> None: ...

class InitTierReply(_message.Message):
    __slots__ = ("created", "location", "object_lock", "versioning")
    CREATED_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    OBJECT_LOCK_FIELD_NUMBER: _ClassVar[int]
    VERSIONING_FIELD_NUMBER: _ClassVar[int]
    created: bool
    location: str
    object_lock: bool
    versioning: bool
    def __init__(self, created: _Optional[bool] = ..., location: _Optional[str] = ..., object_lock: _Optional[bool] = ..., versioning: _Optional[bool] = ...) -> None: ...

class MaintainLocksRequest(_message.Message):
    __slots__ = ("tier",)
    TIER_FIELD_NUMBER: _ClassVar[int]
    tier: str
    def __init__(self, tier: _Optional[str] = ...) -> None: ...

class ArchiveRequest(_message.Message):
    __slots__ = ("tier", "ids")
    TIER_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    tier: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tier: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class LifecycleRequest(_message.Message):
    __slots__ = ("tier", "apply", "rules_json")
    TIER_FIELD_NUMBER: _ClassVar[int]
    APPLY_FIELD_NUMBER: _ClassVar[int]
    RULES_JSON_FIELD_NUMBER: _ClassVar[int]
    tier: str
    apply: bool
    rules_json: str
    def __init__(self, tier: _Optional[str] = ..., apply: _Optional[bool] = ..., rules_json: _Optional[str] = ...) -> None: ...

class LifecycleReply(_message.Message):
    __slots__ = ("rules_json", "findings_json", "applied", "current_json", "current_findings_json")
    RULES_JSON_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_JSON_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    CURRENT_JSON_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FINDINGS_JSON_FIELD_NUMBER: _ClassVar[int]
    rules_json: str
    findings_json: str
    applied: bool
    current_json: str
    current_findings_json: str
    def __init__(self, rules_json: _Optional[str] = ..., findings_json: _Optional[str] = ..., applied: _Optional[bool] = ..., current_json: _Optional[str] = ..., current_findings_json: _Optional[str] = ...) -> None: ...

class ImportS3Request(_message.Message):
    __slots__ = ("url", "tier", "reason", "map_json", "outside_symlinks")
    URL_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MAP_JSON_FIELD_NUMBER: _ClassVar[int]
    OUTSIDE_SYMLINKS_FIELD_NUMBER: _ClassVar[int]
    url: str
    tier: str
    reason: str
    map_json: str
    outside_symlinks: bool
    def __init__(self, url: _Optional[str] = ..., tier: _Optional[str] = ..., reason: _Optional[str] = ..., map_json: _Optional[str] = ..., outside_symlinks: _Optional[bool] = ...) -> None: ...
