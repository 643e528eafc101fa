"""leftovers: interrupted restores' staging directories are removed, and nothing else is."""
from __future__ import annotations

import os

from ragbackup.agent import leftovers


def _mkdir(path, files=1):
    os.makedirs(path)
    for i in range(files):
        with open(os.path.join(path, f"f{i}"), "wb") as f:
            f.write(b"x" * 1000)
    return str(path)


def test_only_the_staging_shape_counts():
    assert leftovers.is_staging_name(".documents.restoring.20261202_061500")
    for name in ("documents", ".documents.restoring.", "documents.restoring.20261202_061500",
                 ".documents.corrupted.20261202_061500", ".documents.restoring.20261202_061500.x"):
        assert not leftovers.is_staging_name(name), name


def test_a_registration_still_there_at_start_is_swept(tmp_path):
    registry = leftovers.registry_dir(str(tmp_path / "staging"))
    killed = _mkdir(tmp_path / "srv" / ".docs.restoring.20261202_061500", files=3)
    ended = _mkdir(tmp_path / "srv" / ".state.restoring.20261202_061501")
    leftovers.begin(registry, killed)
    leftovers.end(leftovers.begin(registry, ended))  # a restore that ended: its directory is not ours
    assert leftovers.sweep_registered(registry).removed == [killed]
    assert not os.path.exists(killed) and os.path.isdir(ended)
    assert os.listdir(registry) == [] and leftovers.sweep_registered(registry) == leftovers.Swept()


def test_siblings_of_the_same_final_path_are_swept_and_nothing_else(tmp_path):
    srv = tmp_path / "srv"
    live = _mkdir(srv / "docs")
    old = _mkdir(srv / ".docs.restoring.20261201_000000", files=2)
    other = _mkdir(srv / ".state.restoring.20261201_000000")
    aside = _mkdir(srv / "docs.corrupted.20261201_000000")
    os.symlink(live, srv / ".docs.restoring.20261201_000001")  # a link is never followed or removed
    assert leftovers.sweep_siblings(str(srv / "docs")) == [old]
    assert sorted(os.listdir(srv)) == sorted([".docs.restoring.20261201_000001", ".state.restoring.20261201_000000",
                                              "docs", "docs.corrupted.20261201_000000"])
    assert os.listdir(live) and os.listdir(other) and os.listdir(aside)


def test_a_registration_naming_something_else_removes_nothing(tmp_path):
    registry = leftovers.registry_dir(str(tmp_path / "staging"))
    data = _mkdir(tmp_path / "srv" / "docs")
    leftovers.begin(registry, data)  # a corrupted or forged registration
    assert leftovers.sweep_registered(registry) == leftovers.Swept() and os.listdir(data)


def test_a_restore_killed_after_moving_data_aside_is_finished_not_swept(tmp_path):
    registry = leftovers.registry_dir(str(tmp_path / "staging"))
    staged = _mkdir(tmp_path / "srv" / ".docs.restoring.20261202_061500", files=3)
    final = str(tmp_path / "srv" / "docs")  # moved aside: missing
    leftovers.swapping(leftovers.begin(registry, staged), staged, final)
    swept = leftovers.sweep_registered(registry)
    assert swept.finished == [(staged, final)] and swept.removed == []
    assert sorted(os.listdir(final)) == ["f0", "f1", "f2"] and not os.path.exists(staged)
    assert os.listdir(registry) == []


def test_an_emptied_mount_point_is_filled_with_the_rest_of_the_staged_tree(tmp_path):
    registry = leftovers.registry_dir(str(tmp_path / "staging"))
    staged = _mkdir(tmp_path / "srv" / ".docs.restoring.20261202_061500", files=3)
    final = tmp_path / "srv" / "docs"
    final.mkdir()
    os.rename(os.path.join(staged, "f0"), final / "f0")  # killed mid-fill
    leftovers.swapping(leftovers.begin(registry, staged), staged, str(final))
    assert leftovers.sweep_registered(registry).finished == [(staged, str(final))]
    assert sorted(os.listdir(final)) == ["f0", "f1", "f2"] and not os.path.exists(staged)


def test_a_registration_before_the_swap_still_only_sweeps(tmp_path):
    registry = leftovers.registry_dir(str(tmp_path / "staging"))
    live = _mkdir(tmp_path / "srv" / "docs")
    staged = _mkdir(tmp_path / "srv" / ".docs.restoring.20261202_061500")
    leftovers.begin(registry, staged)  # killed while writing: the live data never moved
    assert leftovers.sweep_registered(registry).removed == [staged]
    assert os.listdir(live) and not os.path.exists(staged)
