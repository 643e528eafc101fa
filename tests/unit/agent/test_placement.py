"""placement: the one way current data moves aside (sibling NAME.corrupted.TS, mount points emptied
instead of renamed) and the staged root taking the place of the old one."""
import errno
import os
import stat

import pytest

from ragbackup.agent import placement


def test_aside_path_is_a_sibling_and_never_reuses_a_name(tmp_path):
    base = str(tmp_path / "data")
    assert placement.aside_path(base + "/", "20260102_030405") == base + ".corrupted.20260102_030405"
    os.mkdir(base + ".corrupted.20260102_030405")
    assert placement.aside_path(base, "20260102_030405") == base + ".corrupted.20260102_030405.2"


def test_move_aside_renames_and_nothing_there_gives_none(tmp_path):
    data = tmp_path / "data"
    assert placement.move_aside(str(data), "20260102_030405") is None
    data.mkdir()
    (data / "f").write_text("old")
    aside = placement.move_aside(str(data), "20260102_030405")
    assert aside == str(tmp_path / "data.corrupted.20260102_030405")
    assert not data.exists() and (tmp_path / aside / "f").read_text() == "old"


def test_a_mount_point_stays_and_its_contents_move(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    (data / "f").write_text("old")
    os.chmod(data, 0o751)
    real = os.rename

    def rename(src, dst, *a, **kw):
        if os.fspath(src) == str(data):
            raise OSError(errno.EBUSY, "Device or resource busy")
        return real(src, dst, *a, **kw)

    monkeypatch.setattr(os, "rename", rename)
    aside = placement.move_aside(str(data), "20260102_030405")
    assert data.is_dir() and os.listdir(data) == []
    assert (tmp_path / aside / "f").read_text() == "old"
    assert stat.S_IMODE(os.stat(aside).st_mode) == 0o751

    staged = tmp_path / ".data.restoring.x"
    staged.mkdir()
    (staged / "g").write_text("new")
    os.chmod(staged, 0o750)
    p = placement.Placement(final=str(data), staging=str(staged), aside="", in_place=False)
    placement.swap_in(p)  # not in place: final is the emptied mount point
    assert (data / "g").read_text() == "new" and not staged.exists()
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o750


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_recreate_dir_keeps_owner_and_mode(tmp_path):
    aside = tmp_path / "old"
    aside.mkdir()
    os.chmod(aside, 0o710)
    os.chown(aside, 1234, 4321)
    placement.recreate_dir(str(tmp_path / "new"), str(aside))
    st = os.stat(tmp_path / "new")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o710, 1234, 4321)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root gives files away")
def test_chown_tree_gives_every_entry_to_the_owner_links_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.write_text("x")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "f").write_text("data")
    (tree / "link").symlink_to(outside)
    placement.chown_tree(str(tree), (1234, 2345))
    for p in (tree, tree / "sub", tree / "sub" / "f", tree / "link"):
        st = os.lstat(p)
        assert (st.st_uid, st.st_gid) == (1234, 2345), p
    assert os.stat(outside).st_uid == os.getuid()
    placement.chown_tree(str(tree), None)
    assert os.lstat(tree).st_uid == 1234
