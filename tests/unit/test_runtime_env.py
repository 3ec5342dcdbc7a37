"""Runtime envs as plain values (``ember._core.runtime_env``), the scheduler's pooling of
workers per env, and the exclusion patterns of packed folders."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Any

import pytest

from ember._core import runtime_env as renv
from ember._core.resources import NodeResources, shape_of
from ember._core.scheduler import Grant, LeaseScheduler, Refuse, StartWorker
from ember._runtime.runtime_env_files import excluded, pack

CPU1 = shape_of({"CPU": 1})


# -- validate ---------------------------------------------------------------------------------


def test_validate_normalizes_pip_and_config_and_drops_none() -> None:
    env = renv.validate(
        {
            "env_vars": {"A": "1"},
            "pip": ["requests==2.31"],
            "working_dir": None,
            "config": {"setup_timeout_seconds": 30},
        }
    )
    assert env == {
        "env_vars": {"A": "1"},
        "pip": {"packages": ["requests==2.31"], "pip_check": False},
        "config": {"setup_timeout_seconds": 30, "eager_install": True},
    }
    assert renv.validate({"pip": {"packages": ["x"], "pip_version": "==23.3"}})["pip"] == {
        "packages": ["x"],
        "pip_check": False,
        "pip_version": "==23.3",
    }


@pytest.mark.parametrize(
    ("env", "error", "words"),
    [
        ({"foo": 1, "env_vars": {}}, ValueError, "unknown field(s) ['foo']"),
        ({"conda": "env.yaml"}, ValueError, "not supported by Ember"),
        ({"env_vars": {"A": 1}}, TypeError, "env_vars"),
        ({"env_vars": ["A"]}, TypeError, "env_vars"),
        ({"working_dir": 3}, TypeError, "working_dir"),
        ({"py_modules": "pkg"}, TypeError, "py_modules"),
        ({"pip": 3}, TypeError, "pip"),
        ({"pip": {"pkgs": ["x"]}}, ValueError, "['pkgs']"),
        ({"pip": {"packages": ["x"], "pip_check": "yes"}}, TypeError, "pip_check"),
        ({"worker_process_setup_hook": 3}, TypeError, "worker_process_setup_hook"),
        ({"config": {"setup_timeout_seconds": 0}}, ValueError, "setup_timeout_seconds"),
        ({"config": {"setup_timeout_seconds": 1.5}}, TypeError, "setup_timeout_seconds"),
        ({"config": {"eager_install": 1}}, TypeError, "eager_install"),
        ({"config": {"timeout": 1}}, ValueError, "['timeout']"),
        ("env_vars", TypeError, "must be a dict"),
    ],
)
def test_validate_names_what_is_wrong(env: Any, error: type[Exception], words: str) -> None:
    with pytest.raises(error) as info:
        renv.validate(env)
    assert words in str(info.value)


def test_setup_timeout() -> None:
    assert renv.setup_timeout({}) == renv.DEFAULT_SETUP_TIMEOUT_SECONDS
    assert renv.setup_timeout({"config": {"setup_timeout_seconds": -1}}) is None
    assert renv.setup_timeout({"config": {"setup_timeout_seconds": 5}}) == 5


# -- merge, canonical text, keys ----------------------------------------------------------------


def test_merge_env_vars_merge_and_other_fields_are_replaced() -> None:
    parent = {"env_vars": {"A": "job", "B": "job"}, "working_dir": "gcs://w", "pip": {"x": 1}}
    child = {"env_vars": {"A": "task"}, "pip": {"y": 2}}
    assert renv.merge(parent, child) == {
        "env_vars": {"A": "task", "B": "job"},
        "working_dir": "gcs://w",
        "pip": {"y": 2},
    }
    assert renv.merge(None, {"working_dir": "gcs://w"}) == {"working_dir": "gcs://w"}
    assert renv.merge({"env_vars": {"A": "1"}}, None) == {"env_vars": {"A": "1"}}
    assert parent["env_vars"] == {"A": "job", "B": "job"}  # (inputs untouched)


def test_canonical_text_names_an_env_whatever_the_order() -> None:
    a = renv.canonical({"env_vars": {"A": "1", "B": "2"}, "working_dir": "gcs://w"})
    b = renv.canonical({"working_dir": "gcs://w", "env_vars": {"B": "2", "A": "1"}})
    assert a == b and renv.parse(a) == {"env_vars": {"A": "1", "B": "2"}, "working_dir": "gcs://w"}
    assert renv.canonical({}) == "" and renv.parse("") == {}
    assert renv.digest(a) == renv.digest(b) != renv.digest(renv.canonical({"env_vars": {}}))


def test_pip_key_depends_on_the_requirements_only() -> None:
    pip = {"packages": ["x"], "pip_check": False}
    assert renv.pip_key({"pip": pip}) == renv.pip_key({"pip": pip, "env_vars": {"A": "1"}})
    assert renv.pip_key({"pip": pip}) != renv.pip_key({"pip": {**pip, "packages": ["y"]}})
    assert renv.pip_key({"env_vars": {"A": "1"}}) == ""


# -- the scheduler pools workers per env ------------------------------------------------------


def test_a_worker_serves_only_the_env_it_was_started_for() -> None:
    s = LeaseScheduler(NodeResources({"CPU": 2}))
    assert s.worker_started(b"plain") == []
    actions = s.request("c", 1, CPU1, runtime_env="E")
    assert actions == [StartWorker("E")]  # the idle plain worker does not take it
    granted = s.worker_started(b"e-worker", "E")
    assert [(g.rid, g.worker_id) for g in granted if isinstance(g, Grant)] == [(1, b"e-worker")]
    actions = s.request("c", 2, CPU1)
    assert [(g.rid, g.worker_id) for g in actions if isinstance(g, Grant)] == [(2, b"plain")]


def test_a_blocked_worker_is_shared_only_within_its_env() -> None:
    s = LeaseScheduler(NodeResources({"CPU": 2}))
    s.worker_started(b"e-worker", "E")
    (grant,) = s.request("c", 1, CPU1, runtime_env="E")
    assert isinstance(grant, Grant)
    s.blocked(grant.lease_id)
    assert s.request("c", 2, CPU1, runtime_env="F") == [StartWorker("F")]
    (again,) = s.request("c", 3, CPU1, runtime_env="E")
    assert isinstance(again, Grant) and again.worker_id == b"e-worker"


def test_starts_are_counted_per_env() -> None:
    s = LeaseScheduler(NodeResources({"CPU": 4}), max_starting=2)
    assert s.request("c", 1, CPU1, runtime_env="E") == [StartWorker("E")]
    assert s.request("c", 2, CPU1, runtime_env="E") == [StartWorker("E")]
    assert s.request("c", 3, CPU1, runtime_env="E") == []  # two of E are starting already
    assert s.request("c", 4, CPU1) == [StartWorker("")]


def test_workers_of_an_env_that_keep_failing_refuse_only_that_envs_requests() -> None:
    s = LeaseScheduler(NodeResources({"CPU": 4}), max_starting=1)
    s.request("c", 1, CPU1, runtime_env="E")
    s.request("c", 2, CPU1)
    refused: list[Refuse] = []
    for _ in range(3):
        refused += [a for a in s.worker_start_failed("log", "E") if isinstance(a, Refuse)]
    assert [r.rid for r in refused] == [1]
    granted = s.worker_started(b"plain")
    assert [g.rid for g in granted if isinstance(g, Grant)] == [2]


# -- packing a folder -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "is_dir", "patterns", "out"),
    [
        ("data/big.bin", False, ["*.bin"], True),
        ("big.bin", False, ["data/*.bin"], False),
        ("data/big.bin", False, ["data/*.bin"], True),
        ("sub/data", True, ["/data"], False),
        ("data", True, ["/data/"], True),
        ("data", False, ["data/"], False),
        ("a/.git", True, [".git"], True),
        ("keep.py", False, ["*.bin", ".git"], False),
    ],
)
def test_excludes_are_gitignore_style(
    path: str, is_dir: bool, patterns: list[str], out: bool
) -> None:
    assert excluded(path, is_dir, patterns) is out


def test_a_worker_prestarted_for_an_env_serves_its_first_request() -> None:
    s = LeaseScheduler(NodeResources({"CPU": 2}))
    assert s.prestart(1, "E") == [StartWorker("E")]
    assert s.request("c", 1, CPU1, runtime_env="E") == []  # (one is starting already)
    granted = s.worker_started(b"early", "E")
    assert [g.worker_id for g in granted if isinstance(g, Grant)] == [b"early"]


def test_a_packed_folder_is_named_by_its_content(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    (project / "sub" / "a.py").write_text("A = 1\n")
    (project / "big.bin").write_bytes(b"x" * 1000)
    (project / "notes.log").write_text("log")
    (project / ".gitignore").write_text("# comment\n*.log\n")
    uri, data = pack(str(project), ["*.bin"], keep_name=False)
    assert uri.startswith("gcs://_ember_pkg_") and uri.endswith(".zip")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert sorted(zf.namelist()) == [".gitignore", "sub/a.py"]
    os.utime(project / "sub" / "a.py", (0, 0))  # a new date alone is the same content
    assert pack(str(project), ["*.bin"], keep_name=False) == (uri, data)
    (project / "sub" / "a.py").write_text("A = 2\n")
    assert pack(str(project), ["*.bin"], keep_name=False)[0] != uri
    _, named = pack(str(project / "sub"), [], keep_name=True)
    with zipfile.ZipFile(io.BytesIO(named)) as zf:
        assert zf.namelist() == ["sub/a.py"]  # a py_modules package keeps its name
    with pytest.raises(ValueError, match="not a valid path"):
        pack(str(tmp_path / "missing"), [], keep_name=False)


def test_a_requirements_file_and_the_public_classes(tmp_path: Path) -> None:
    from ember.runtime_env import RuntimeEnv, RuntimeEnvConfig

    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# pinned\nrequests==2.31\n\n--find-links /wheels\n")
    env = RuntimeEnv(pip=str(requirements), config=RuntimeEnvConfig(setup_timeout_seconds=5))
    assert env == {
        "pip": {"packages": ["requests==2.31", "--find-links /wheels"], "pip_check": False},
        "config": {"setup_timeout_seconds": 5, "eager_install": True},
    }
    assert RuntimeEnv.deserialize(env.serialize()) == env
    with pytest.raises(ValueError, match="not a valid file"):
        RuntimeEnv(pip=str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="is not a valid path"):
        RuntimeEnv(working_dir=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="setup_timeout_seconds"):
        RuntimeEnvConfig(setup_timeout_seconds=-5)


# -- a call's env, resolved at the call site ---------------------------------------------------


class _Runtime:
    """What ``for_call`` uses of the process's runtime."""

    node_id = b"n"
    runtime_env = ""

    def __init__(self) -> None:
        self.exported: dict[bytes, bytes] = {}

    def export_function(self, key: bytes, make: Any) -> None:
        self.exported[key] = make()


def test_a_new_setup_hook_is_resolved_anew_even_where_an_old_one_s_id_is_reused() -> None:
    """Each hook is a new function, freed after its call: CPython gives the next one the
    same id, which must not find the env resolved for the one before."""
    from ember._api import runtime_env as api_env

    rt: Any = _Runtime()
    texts = set()
    for i in range(20):

        def hook(i: int = i) -> None:
            print(i)

        texts.add(api_env.for_call(rt, {"worker_process_setup_hook": hook}))
        del hook
    assert len(texts) == 20 == len(rt.exported)


def test_resolved_envs_kept_are_bounded() -> None:
    from ember._api import runtime_env as api_env

    rt: Any = _Runtime()
    first = api_env.for_call(rt, {"env_vars": {"N": "first"}})
    for i in range(2 * api_env._RESOLVED_KEPT):
        api_env.for_call(rt, {"env_vars": {"N": str(i)}})
    assert len(api_env._resolved) <= api_env._RESOLVED_KEPT
    assert api_env.for_call(rt, {"env_vars": {"N": "first"}}) == first
