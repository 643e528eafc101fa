"""In: a container name (or compose "project/service"), paths or argv; tar data streamed, never held in memory.
Out: files safely extracted under a host dir (capture), a tree put into a container (restore), (exit, output).
"""
from __future__ import annotations

import io
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ragbackup import errors

if TYPE_CHECKING:
    import docker
from ragbackup.agent.services.base import PAUSED, RUNNING
from ragbackup.agent.services.docker import (
    container_state,
    docker_client,
    docker_errors,
    resolve_container,
)

COPY_BUFFER = 1 << 20
EXEC_OUTPUT_LIMIT = 1 << 20  # bytes of exec output kept; the rest is read and dropped
_GO_MODE_DIR = 1 << 31  # os.ModeDir in the X-Docker-Container-Path-Stat header
_DROP_MODE_BITS = stat.S_ISUID | stat.S_ISGID  # never recreate set-id files on the host


@dataclass
class TreeStats:
    """What a copy moved: entries (files, dirs, links) and regular-file bytes."""

    entries: int = 0
    bytes: int = 0


@dataclass
class _Extraction:
    """Per-extraction state: the resolved root and work deferred to the end."""

    root: Path
    strip: int
    stats: TreeStats = field(default_factory=TreeStats)
    dirs: list[tuple[Path, tarfile.TarInfo]] = field(default_factory=list)
    links: list[Path] = field(default_factory=list)


# ---------------------------------------------------------------- export


def export_path(container_name: str, path: str, dest_dir: str | os.PathLike,
                client: docker.DockerClient | None = None) -> TreeStats:
    """Copy `path` from the container (running, paused or stopped) into `dest_dir`.

    A directory's contents land directly in dest_dir (its own owner/mode/mtime go to dest_dir);
    a single file lands as dest_dir/<name>. The archive is checked member by member (UnsafePath).
    """
    client = client or docker_client()
    container = resolve_container(client, container_name)
    with docker_errors(f"read {path} from docker container {container.name}"):
        chunks, path_stat = container.get_archive(path)
    strip = 1 if int(path_stat.get("mode", 0)) & _GO_MODE_DIR else 0
    raw = _ChunkReader(_translated(chunks, f"read {path} from docker container {container.name}"))
    with io.BufferedReader(raw, COPY_BUFFER) as stream:
        return safe_extract(stream, dest_dir, strip_components=strip)


def _translated(chunks: Iterable[bytes], what: str) -> Iterator[bytes]:
    """Yield the chunks, translating transport errors raised while streaming."""
    with docker_errors(what):
        yield from chunks


class _ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks (the get_archive stream)."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[override]
        """Fill `buf` from the current chunk, pulling the next one when empty; 0 at the end."""
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(buf), len(self._pending))
        buf[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


# ---------------------------------------------------------------- safe extraction


def safe_extract(stream: BinaryIO, dest_dir: str | os.PathLike, strip_components: int = 0) -> TreeStats:
    """Extract a tar stream under dest_dir, refusing anything that could write or point outside it.

    Refused (errors.UnsafePath): absolute names, `..`, members through a symlink, symlinks or hard
    links leading out, device nodes and FIFOs. Owners are kept when running as root; set-id bits are
    dropped. A stripped-away top directory's metadata is applied to dest_dir itself.
    """
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    ex = _Extraction(root=dest.resolve(), strip=strip_components)
    with tarfile.open(fileobj=stream, mode="r|*") as tar:
        for member in tar:
            _extract_member(tar, member, ex)
            tar.members = []  # stream mode keeps every TarInfo otherwise: memory grows with file count
    _check_links_stay_inside(ex)
    for path, member in reversed(ex.dirs):
        _apply_metadata(path, member)
    return ex.stats


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, ex: _Extraction) -> None:
    """Validate one member and create it."""
    rel = member_relpath(member.name, ex.strip)
    if rel == "":
        if not member.isdir():
            raise errors.UnsafePath(f"tar member {member.name!r}: only a directory may stand for the target itself")
        ex.dirs.append((ex.root, member))
        return
    if member.ischr() or member.isblk():
        raise errors.UnsafePath(f"tar member {member.name!r} is a device node; refusing to create it")
    if member.isfifo():
        raise errors.UnsafePath(f"tar member {member.name!r} is a FIFO; refusing to create it")
    target = _prepare_target(ex.root, rel, member)
    if member.isdir():
        _make_dir(target, member, ex)
    elif member.issym():
        _make_symlink(target, rel, member, ex)
    elif member.islnk():
        _make_hardlink(target, member, ex)
    elif member.isreg():
        _make_file(tar, target, member, ex)
    else:
        raise errors.UnsafePath(f"tar member {member.name!r} has unsupported type {member.type!r}")
    ex.stats.entries += 1


def member_relpath(name: str, strip: int = 0) -> str:
    """The safe relative path of a tar member name after dropping `strip` leading components.

    "" means the target directory itself. Raises UnsafePath for absolute names and `..`.
    """
    if name.startswith("/"):
        raise errors.UnsafePath(f"tar member {name!r} has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise errors.UnsafePath(f"tar member {name!r} contains '..'")
    return "/".join(parts[strip:])


def _prepare_target(root: Path, rel: str, member: tarfile.TarInfo) -> Path:
    """Make the parent dirs of rel (never through a symlink) and clear a non-directory in the way."""
    current = root
    for part in rel.split("/")[:-1]:
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            os.mkdir(current, 0o700)
            continue
        if stat.S_ISLNK(st.st_mode):
            raise errors.UnsafePath(f"tar member {member.name!r} goes through the symlink {current}")
        if not stat.S_ISDIR(st.st_mode):
            raise errors.UnsafePath(f"tar member {member.name!r}: {current} is not a directory")
    target = root / rel
    _clear_target(target, member)
    return target


def _clear_target(target: Path, member: tarfile.TarInfo) -> None:
    """Remove an existing non-directory at target (tar semantics: the later member wins)."""
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        if not member.isdir():
            raise errors.UnsafePath(f"tar member {member.name!r} would replace the directory {target}")
        return
    os.unlink(target)


def _make_dir(target: Path, member: tarfile.TarInfo, ex: _Extraction) -> None:
    """Create a directory; its mode/owner/mtime are applied after its contents are written."""
    if not target.is_dir():
        os.mkdir(target, 0o700)
    ex.dirs.append((target, member))


def _make_file(tar: tarfile.TarFile, target: Path, member: tarfile.TarInfo, ex: _Extraction) -> None:
    """Write a regular file without following any link at target, then set its metadata."""
    source = tar.extractfile(member)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as out:
        if source is not None:
            shutil.copyfileobj(source, out, COPY_BUFFER)
    _apply_metadata(target, member)
    ex.stats.bytes += member.size


def _make_symlink(target: Path, rel: str, member: tarfile.TarInfo, ex: _Extraction) -> None:
    """Create a symlink whose target, read relative to its own directory, stays inside the root."""
    link = member.linkname
    if not link or link.startswith("/"):
        raise errors.UnsafePath(f"symlink {member.name!r} -> {link!r} points outside the target (absolute)")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), link))
    if resolved == ".." or resolved.startswith("../"):
        raise errors.UnsafePath(f"symlink {member.name!r} -> {link!r} points outside the target")
    os.symlink(link, target)
    _apply_metadata(target, member)
    ex.links.append(target)


def _make_hardlink(target: Path, member: tarfile.TarInfo, ex: _Extraction) -> None:
    """Hard-link to a regular file already extracted inside the root."""
    try:
        link_rel = member_relpath(member.linkname, ex.strip)
    except errors.UnsafePath as exc:
        raise errors.UnsafePath(f"hard link {member.name!r} -> {member.linkname!r}: {exc.message}") from exc
    source = ex.root / link_rel
    if link_rel == "" or not _is_plain_file_inside(ex.root, link_rel):
        raise errors.UnsafePath(
            f"hard link {member.name!r} -> {member.linkname!r} does not name a file extracted inside the target")
    os.link(source, target, follow_symlinks=False)


def _is_plain_file_inside(root: Path, rel: str) -> bool:
    """True when rel names a regular file reached from root through real directories only."""
    current = root
    for part in rel.split("/"):
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            return False
        if stat.S_ISLNK(st.st_mode):
            return False
    return stat.S_ISREG(st.st_mode)


def _check_links_stay_inside(ex: _Extraction) -> None:
    """Resolve every symlink created (chains and `..` through other links included); remove and refuse escapes."""
    escaped = [link for link in ex.links if not _inside(ex.root, Path(os.path.realpath(link)))]
    for link in escaped:
        os.unlink(link)
    if escaped:
        raise errors.UnsafePath(f"symlink {escaped[0]} resolves outside {ex.root} (through other links)")


def _inside(root: Path, path: Path) -> bool:
    """True when path is root or below it."""
    return path == root or root in path.parents


def _apply_metadata(path: Path, member: tarfile.TarInfo) -> None:
    """Owner (when root), mode (not for symlinks, set-id bits dropped) and mtime, never following links."""
    is_link = member.issym()
    if os.geteuid() == 0:
        os.chown(path, member.uid, member.gid, follow_symlinks=False)
    if not is_link:
        os.chmod(path, stat.S_IMODE(member.mode) & ~_DROP_MODE_BITS)
    mtime_ns = int(member.mtime * 1_000_000_000)
    os.utime(path, ns=(mtime_ns, mtime_ns), follow_symlinks=False)


# ---------------------------------------------------------------- import


def import_path(container_name: str, src_dir: str | os.PathLike, dest_path: str,
                client: docker.DockerClient | None = None, spool_dir: str | None = None) -> TreeStats:
    """Write the contents of host `src_dir` as the container's `dest_path` (merging into what is there).

    Owners (numeric uid/gid), modes and mtimes come from src_dir, and src_dir's own metadata goes to
    dest_path. Works on stopped containers (restore before start). The tar is spooled to a temp file
    in `spool_dir` (default: the system temp dir), never held in memory.
    """
    dest_path = posixpath.normpath(dest_path)
    if not dest_path.startswith("/") or dest_path == "/":
        raise errors.UsageError(f"import destination {dest_path!r} must be an absolute path below /")
    src = Path(src_dir)
    if not src.is_dir():
        raise errors.NotFound(f"import source {src} is not a directory")
    client = client or docker_client()
    container = resolve_container(client, container_name)
    with tempfile.TemporaryFile(dir=spool_dir) as spool:
        stats = write_tar(src, posixpath.basename(dest_path), spool)
        spool.seek(0)
        with docker_errors(f"write {dest_path} into docker container {container.name}"):
            container.put_archive(posixpath.dirname(dest_path), spool)
    return stats


def write_tar(src: Path, arcname: str, out: BinaryIO) -> TreeStats:
    """Write src (recursively, links as links) to `out` as a PAX tar rooted at `arcname`, numeric owners only."""
    stats = TreeStats()

    def numeric(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uname = info.gname = ""
        stats.entries += 1
        stats.bytes += info.size if info.isreg() else 0
        return info

    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(src, arcname=arcname, recursive=True, filter=numeric)
    stats.entries -= 1  # the root entry is dest_path itself
    return stats


# ---------------------------------------------------------------- exec


def exec_in(container_name: str, argv: Sequence[str], timeout_s: float,
            env: Mapping[str, str] | None = None, client: docker.DockerClient | None = None) -> tuple[int, bytes]:
    """Run argv in the running container; return (exit code, stdout+stderr, first EXEC_OUTPUT_LIMIT bytes).

    A paused or stopped container is a UsageError (docker refuses exec there). Past `timeout_s` the
    stream is closed and errors.Unavailable raised; the process may keep running in the container.
    """
    client = client or docker_client()
    container = resolve_container(client, container_name)
    state = container_state(container)
    if state != RUNNING:
        hint = "unpause it first" if state == PAUSED else "start it first"
        raise errors.UsageError(f"cannot exec in docker container {container.name}: it is {state}; {hint}")
    what = f"exec {list(argv)} in docker container {container.name}"
    with docker_errors(what):
        exec_id = client.api.exec_create(container.id, list(argv), environment=dict(env or {}))["Id"]
        output = _read_exec_output(client, exec_id, timeout_s, what)
        return _exec_exit_code(client, exec_id), output


def _read_exec_output(client: docker.DockerClient, exec_id: str, timeout_s: float, what: str) -> bytes:
    """Collect the exec's output in a reader thread; close the stream and raise Unavailable on timeout."""
    stream = client.api.exec_start(exec_id, stream=True)
    kept = bytearray()
    failure: list[BaseException] = []

    def pump() -> None:
        try:
            for chunk in stream:
                if len(kept) < EXEC_OUTPUT_LIMIT:
                    kept.extend(chunk[: EXEC_OUTPUT_LIMIT - len(kept)])
        except Exception as exc:  # noqa: BLE001 - handed to the caller's thread, which re-raises it
            failure.append(exc)

    reader = threading.Thread(target=pump, name=f"exec-{exec_id[:12]}", daemon=True)
    reader.start()
    reader.join(timeout_s)
    if reader.is_alive():
        stream.close()
        reader.join(5)
        raise errors.Unavailable(f"{what} did not finish within {timeout_s:g}s (it may still run in the container)")
    if failure:
        raise failure[0]
    return bytes(kept)


def _exec_exit_code(client: docker.DockerClient, exec_id: str) -> int:
    """The exit code once the daemon has recorded it (it can lag the end of the stream slightly)."""
    deadline = time.monotonic() + 5.0
    while True:
        info = client.api.exec_inspect(exec_id)
        if not info.get("Running") and info.get("ExitCode") is not None:
            return int(info["ExitCode"])
        if time.monotonic() > deadline:
            raise errors.Unavailable(f"docker exec {exec_id[:12]}: output ended but no exit code was recorded")
        time.sleep(0.02)
