"""Where the state API and the CLI ask when given no address: the one cluster or ``init()``
session recorded on this host (records in a temporary folder of this test's own)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ember._runtime.launch import admin, cluster_files


@pytest.fixture(autouse=True)
def own_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv("EMBER_ADDRESS", raising=False)
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def test_a_running_session_is_found_and_a_dead_one_forgotten():
    with pytest.raises(ConnectionError, match="Could not find a running Ember cluster"):
        admin.state_target(None)
    cluster_files.write_session("aa" * 16, "unix:@ember-test/control", os.getpid())
    assert admin.state_target(None) == ("unix:@ember-test/control", None)
    assert admin.state_target("auto") == ("unix:@ember-test/control", None)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    cluster_files.write_session("bb" * 16, "unix:@ember-gone/control", gone.pid)
    assert cluster_files.read_sessions() == ["unix:@ember-test/control"]
    assert sorted(os.listdir(cluster_files.sessions_dir())) == [f"{'aa' * 16}.json"]
    cluster_files.write_session("cc" * 16, "unix:@ember-other/control", os.getpid())
    with pytest.raises(ConnectionError, match="Several Ember clusters or sessions"):
        admin.state_target(None)
    cluster_files.remove_session("aa" * 16)
    cluster_files.remove_session("cc" * 16)
    assert cluster_files.read_sessions() == []


def test_an_address_in_the_environment_is_taken(monkeypatch):
    monkeypatch.setenv("EMBER_ADDRESS", "unix:@ember-env/control")
    assert admin.state_target(None) == ("unix:@ember-env/control", None)


@pytest.mark.parametrize("address", ["foo", "host:", ":6380", "host:port", "host:70000"])
def test_an_address_that_is_not_host_port_is_refused_by_name(address):
    with pytest.raises(ValueError, match="is not HOST:PORT"):
        admin.state_target(address)
