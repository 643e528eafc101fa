"""OSErrors become typed errors naming area, operation, path and errno; the interceptor finds the area."""
import errno

import pytest

from ragbackup import errors
from ragbackup.rpc import area_of


@pytest.mark.parametrize("code,area,cls,exit_code", [
    (errno.EROFS, "repository", errors.RepositoryError, 4),
    (errno.ENOTDIR, "repository", errors.RepositoryError, 4),
    (errno.ENOSPC, "repository", errors.RepositoryNoSpace, 4),
    (errno.EACCES, "state_dir", errors.StateError, 3),
    (errno.ENOSPC, "state_dir", errors.StateNoSpace, 3),
])
def test_from_os_error(code, area, cls, exit_code):
    exc = errors.from_os_error(OSError(code, "reason", "/ignored"), area, "write", "/vol/packs/ab/x")
    assert type(exc) is cls and exc.exit_code == exit_code
    assert exc.message == f"{area}: cannot write /vol/packs/ab/x: reason ({errno.errorcode[code]})"
    if code == errno.ENOSPC:
        assert isinstance(exc, errors.NoSpace)


def test_os_boundary_and_locate():
    with pytest.raises(errors.StateError, match=r"state_dir: cannot create lock file /s/l: .* \(EROFS\)"):
        with errors.os_boundary("state_dir", "create lock file", "/s/l"):
            raise OSError(errno.EROFS, "Read-only file system")
    with pytest.raises(OSError) as caught:
        with errors.locate_os_error("/repo/tmp", "write a pack in"):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert caught.value.filename == "/repo/tmp"
    assert getattr(caught.value, errors.OS_OP_ATTR) == "write a pack in"


def test_area_of_picks_the_deepest_root():
    areas = {"/var/lib/rag": "state_dir", "/var/lib/rag/repo": "repository"}
    assert area_of("/var/lib/rag/repo/tmp/.pack-1", areas) == "repository"
    assert area_of("/var/lib/rag/locks/x.lock", areas) == "state_dir"
    assert area_of("/var/lib/rag", areas) == "state_dir"
    assert area_of("/var/lib/ragged/x", areas) is None
    assert area_of(None, areas) is None


def test_every_error_class_names_a_real_grpc_status():
    """Each class names its status (looked up when read, so processes that never speak gRPC do not load it)."""
    import grpc

    classes = [errors.RagBackupError, *errors._all_subclasses(errors.RagBackupError)]
    assert len(classes) > 15
    for cls in classes:
        assert isinstance(cls.grpc_status, grpc.StatusCode), cls
        assert cls("x").grpc_status is cls.grpc_status
    assert errors.IntegrityError.grpc_status is grpc.StatusCode.DATA_LOSS
    assert errors.StateNoSpace.grpc_status is grpc.StatusCode.RESOURCE_EXHAUSTED
