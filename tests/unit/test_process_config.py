"""The settings passed to a started node manager or control store, and the knobs of
``init(_system_config=...)``."""

from __future__ import annotations

import pytest

from ember._runtime.launch.process_config import (
    ControlStoreConfig,
    NodeConfig,
    decode,
    encode,
    setting,
    system_config,
)


def test_a_node_config_comes_back_as_it_was_sent() -> None:
    config = NodeConfig(
        node_id=bytes(range(16)),
        session_dir="/tmp/s",
        shm_dir="/dev/shm/x",
        spill_dir="/tmp/s/spill",
        log_dir="/tmp/s/logs",
        log="/tmp/s/logs/node.log",
        object_store_memory=1 << 30,
        resources={"CPU": 2.0, "node:127.0.0.1": 1.0},
        ref_grace_s=0.05,
        control_address="tcp:10.0.0.1:6379",
        token="secret",
        control_store_pid=42,
        control_store_settings={"host": "10.0.0.1", "port": 6379},
        ready_fd=7,
    )
    assert decode(NodeConfig, encode(config)) == config


def test_a_control_store_config_comes_back_as_it_was_sent() -> None:
    config = ControlStoreConfig("tcp:0.0.0.0:0", "t", fresh=False, storage="redis://x")
    assert decode(ControlStoreConfig, encode(config)) == config


def test_a_setting_nobody_knows_fails_where_it_is_read() -> None:
    with pytest.raises(TypeError, match="colour"):
        decode(ControlStoreConfig, b'{"address": "x", "token": null, "colour": "red"}')


def test_system_config_takes_the_node_s_knobs_and_refuses_others_by_name() -> None:
    assert system_config(None) == {}
    assert system_config({"ref_grace_s": 0}) == {"ref_grace_s": 0.0}
    with pytest.raises(ValueError, match="'automatic_object_spilling_enabled'"):
        system_config({"ref_grace_s": 0, "automatic_object_spilling_enabled": True})
    with pytest.raises(ValueError, match="ref_grace_s"):
        system_config({"ref_grace_s": -1})
    with pytest.raises(ValueError, match="ref_grace_s"):
        system_config({"ref_grace_s": "soon"})


def test_system_config_takes_the_memory_monitor_s_settings() -> None:
    given = {"memory_usage_threshold": 0.5, "memory_monitor_refresh_ms": 0}
    assert system_config(given) == {"memory_usage_threshold": 0.5, "memory_monitor_refresh_ms": 0.0}
    with pytest.raises(ValueError, match="between 0 and 1"):
        system_config({"memory_usage_threshold": 1.5})


def test_a_setting_comes_from_the_process_then_ember_s_then_ray_s_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert setting(None, "memory_usage_threshold", 0.95) == 0.95
    monkeypatch.setenv("RAY_memory_usage_threshold", "0.8")
    assert setting(None, "memory_usage_threshold", 0.95) == 0.8
    monkeypatch.setenv("EMBER_MEMORY_USAGE_THRESHOLD", "0.7")
    assert setting(None, "memory_usage_threshold", 0.95) == 0.7
    assert setting(0.6, "memory_usage_threshold", 0.95) == 0.6
    monkeypatch.setenv("EMBER_MEMORY_USAGE_THRESHOLD", "high")
    with pytest.raises(ValueError, match="EMBER_MEMORY_USAGE_THRESHOLD must be a number"):
        setting(None, "memory_usage_threshold", 0.95)
