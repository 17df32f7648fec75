"""Atomic outputs: whole or absent, never half-written."""

from __future__ import annotations

from pathlib import Path

import pytest

from leed_runtime.atomic import TMP_PREFIX, atomic_path, atomic_write, atomic_write_bytes


def test_failed_write_leaves_previous_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, b"old")

    def boom(fh) -> None:
        fh.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_atomic_path_renames_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "video.mp4"
    with pytest.raises(KeyError), atomic_path(target) as tmp:
        assert tmp.name.startswith(TMP_PREFIX) and tmp.suffix == ".mp4"
        tmp.write_bytes(b"half")
        raise KeyError("killed")
    assert not target.exists() and not list(target.parent.iterdir())
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole" and len(list(target.parent.iterdir())) == 1


def test_outputs_get_normal_permissions(tmp_path: Path) -> None:
    import os

    target = tmp_path / "meta.json"
    atomic_write_bytes(target, b"{}")
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
