"""Where the object store lives and how big it is, including the small-/dev/shm warning."""

from __future__ import annotations

import os
import warnings
from types import SimpleNamespace

import pytest

from ember._runtime.launch import launcher


def _fake_statvfs(free_bytes: int):
    return lambda path: SimpleNamespace(f_bavail=free_bytes // 4096, f_frsize=4096)


def test_small_dev_shm_warns_and_caps_the_store(monkeypatch):
    monkeypatch.setattr(launcher.os.path, "isdir", lambda p: True)
    monkeypatch.setattr(launcher.os, "access", lambda p, mode: True)
    monkeypatch.setattr(launcher.os, "statvfs", _fake_statvfs(64 * 2**20))
    with pytest.warns(UserWarning, match="shm-size"):
        path, capacity = launcher._store_dirs("abcd", 2**30)
    assert path.startswith("/dev/shm/")
    assert capacity <= 64 * 2**20


def test_roomy_dev_shm_keeps_the_requested_capacity(monkeypatch):
    monkeypatch.setattr(launcher.os.path, "isdir", lambda p: True)
    monkeypatch.setattr(launcher.os, "access", lambda p, mode: True)
    monkeypatch.setattr(launcher.os, "statvfs", _fake_statvfs(8 * 2**30))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, capacity = launcher._store_dirs("abcd", 2**30)
    assert capacity == 2**30


def test_missing_dev_shm_falls_back_to_a_temp_folder_with_a_warning(monkeypatch):
    monkeypatch.setattr(launcher, "_SHM", "/no/such/shared/memory")
    with pytest.warns(UserWarning, match="not available"):
        path, _ = launcher._store_dirs("abcd", 2**30)
    assert not path.startswith("/dev/shm") and os.path.basename(path) == "objects-abcd"
