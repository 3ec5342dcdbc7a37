"""Runtime environments (``runtime_env``) for jobs, tasks and actors, with real workers."""

from __future__ import annotations

import os
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests._helpers import wait_until


def _env_of() -> Callable[..., Any]:
    import ember

    @ember.remote
    def env_of(*names: str) -> tuple[Any, ...]:
        return tuple(os.environ.get(n) for n in names) + (os.getpid(),)

    return env_of


def test_env_vars_of_a_task_merge_with_the_jobs(start_ember: Callable[..., Any]) -> None:
    ray = start_ember(runtime_env={"env_vars": {"A": "job", "B": "job"}})
    env_of = _env_of()
    assert ray.get(env_of.remote("A", "B"))[:2] == ("job", "job")
    task_env = {"env_vars": {"A": "task", "C": "task"}}
    assert ray.get(env_of.options(runtime_env=task_env).remote("A", "B", "C"))[:3] == (
        "task",
        "job",
        "task",
    )
    assert dict(ray.get_runtime_context().runtime_env) == {"env_vars": {"A": "job", "B": "job"}}
    assert "A" not in os.environ  # the driver's own environment is not the job's


def test_runtime_context_and_nested_tasks_inherit_the_env(ray: Any) -> None:
    @ray.remote
    def child() -> tuple[str | None, dict[str, Any]]:
        return os.environ.get("LEVEL"), dict(ray.get_runtime_context().runtime_env)

    @ray.remote
    def parent() -> Any:
        return ray.get(child.remote())

    @ray.remote
    class Holder:
        def env(self) -> tuple[str | None, dict[str, Any]]:
            return os.environ.get("LEVEL"), dict(ray.get_runtime_context().runtime_env)

    env = {"env_vars": {"LEVEL": "parent"}}
    assert ray.get(parent.options(runtime_env=env).remote()) == ("parent", env)
    holder = Holder.options(runtime_env={"env_vars": {"LEVEL": "actor"}}).remote()
    assert ray.get(holder.env.remote()) == ("actor", {"env_vars": {"LEVEL": "actor"}})


def test_workers_are_pooled_per_env(ray: Any) -> None:
    env_of = _env_of()
    with_env = env_of.options(runtime_env={"env_vars": {"POOLED": "yes"}})
    for _ in range(3):
        refs = [with_env.remote("POOLED"), env_of.remote("POOLED")]
        (yes, env_pid), (no, plain_pid) = ray.get(refs)
        assert (yes, no) == ("yes", None) and env_pid != plain_pid


def test_working_dir_and_py_modules_of_a_job(
    start_ember: Callable[..., Any], tmp_path: Path
) -> None:
    work = tmp_path / "project"
    (work / "data").mkdir(parents=True)
    (work / "data" / "config.txt").write_text("from the working dir")
    (work / "data" / "big.bin").write_bytes(b"x" * 100)
    (work / "helper.py").write_text("def where():\n    return 'helper'\n")
    package = tmp_path / "libs" / "renvpkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("NAME = 'renvpkg'\n")
    ray = start_ember(
        runtime_env={
            "working_dir": str(work),
            "py_modules": [str(package)],
            "excludes": ["*.bin"],
        }
    )

    @ray.remote
    def look() -> tuple[str, str, str, bool, str]:
        import helper  # from the working dir
        import renvpkg  # from py_modules

        with open("data/config.txt") as f:
            text = f.read()
        return text, helper.where(), renvpkg.NAME, os.path.exists("data/big.bin"), os.getcwd()

    text, helper, name, has_big, cwd = ray.get(look.remote())
    assert (text, helper, name, has_big) == ("from the working dir", "helper", "renvpkg", False)
    assert cwd != os.getcwd()  # a copy on the node, not the driver's folder
    env = ray.get_runtime_context().runtime_env
    assert env["working_dir"].startswith("gcs://") and env["working_dir"].endswith(".zip")
    assert [m.startswith("gcs://") for m in env["py_modules"]] == [True]


def test_a_missing_working_dir_is_refused_at_init(start_ember: Callable[..., Any]) -> None:
    with pytest.raises(ValueError, match="/nonexistent/renv"):
        start_ember(runtime_env={"working_dir": "/nonexistent/renv"})


def _mark_hooked() -> None:
    os.environ["HOOKED_IN"] = str(os.getpid())


def test_setup_hook_runs_in_each_new_worker_of_the_job(start_ember: Callable[..., Any]) -> None:
    ray = start_ember(runtime_env={"worker_process_setup_hook": _mark_hooked})
    env_of = _env_of()
    results = ray.get([env_of.remote("HOOKED_IN") for _ in range(4)])
    assert all(hooked == str(pid) for hooked, pid in results)


def test_runtime_env_class(ray: Any) -> None:
    from ember.runtime_env import RuntimeEnv

    env = RuntimeEnv(env_vars={"FROM_CLASS": "1"})
    assert isinstance(env, dict) and env["env_vars"] == {"FROM_CLASS": "1"}
    assert ray.get(_env_of().options(runtime_env=env).remote("FROM_CLASS"))[0] == "1"
    with pytest.raises(TypeError, match="env_vars"):
        RuntimeEnv(env_vars={"A": 1})  # type: ignore[dict-item]


@pytest.mark.ember_only  # Ray accepts unknown fields (for its plugins) and fails later
def test_unknown_fields_are_refused(ray: Any) -> None:
    from ember.runtime_env import RuntimeEnv

    with pytest.raises(ValueError, match=r"unknown field\(s\) \['envvars'\]"):
        RuntimeEnv(envvars={"A": "1"})
    with pytest.raises(ValueError, match=r"\['envvars'\]"):
        _env_of().options(runtime_env={"envvars": {"A": "1"}}).remote()


@pytest.mark.ember_only  # Ray takes local folders and callables only in init()'s env
def test_task_level_working_dir_and_failing_hooks(ray: Any, tmp_path: Path) -> None:
    (tmp_path / "note.txt").write_text("task level")

    @ray.remote
    def read() -> str:
        with open("note.txt") as f:
            return f.read()

    assert ray.get(read.options(runtime_env={"working_dir": str(tmp_path)}).remote()) == (
        "task level"
    )
    _wheel(tmp_path / "wheels", "renvwheelmod")  # a wheel in py_modules is importable

    @ray.remote
    def from_wheel() -> int:
        import renvwheelmod

        return int(renvwheelmod.VALUE)

    wheel = str(next((tmp_path / "wheels").glob("*.whl")))
    assert ray.get(from_wheel.options(runtime_env={"py_modules": [wheel]}).remote()) == 42

    def broken_hook() -> None:
        raise RuntimeError("the hook broke")

    with pytest.raises(ray.exceptions.RuntimeEnvSetupError, match="the hook broke"):
        ray.get(read.options(runtime_env={"worker_process_setup_hook": broken_hook}).remote())

    @ray.remote
    class Actor:
        def ping(self) -> str:
            return "pong"

    bad = Actor.options(runtime_env={"worker_process_setup_hook": "no_such_module_x.setup"})
    with pytest.raises(ray.exceptions.RuntimeEnvSetupError, match="no_such_module_x"):
        ray.get(bad.remote().ping.remote())
    assert ray.get(Actor.remote().ping.remote()) == "pong"  # nothing else disturbed


def _wheel(folder: Path, name: str) -> None:
    """A pure-Python wheel made by hand (no build tools, no network)."""
    folder.mkdir()
    with zipfile.ZipFile(folder / f"{name}-1.0-py3-none-any.whl", "w") as whl:
        whl.writestr(f"{name}/__init__.py", "VALUE = 42\n")
        info = f"{name}-1.0.dist-info"
        whl.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        whl.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        whl.writestr(f"{info}/RECORD", "")


@pytest.mark.ember_only  # (Ray's pip env needs `virtualenv`, and its installs are slow)
def test_pip_installs_once_per_node_into_a_venv(ray: Any, tmp_path: Path) -> None:
    _wheel(tmp_path / "wheels", "renvtinypkg")
    pip = ["--no-index", f"--find-links {tmp_path / 'wheels'}", "renvtinypkg"]

    @ray.remote
    def use() -> tuple[int, str]:
        import renvtinypkg

        return renvtinypkg.VALUE, sys.prefix

    value, prefix = ray.get(use.options(runtime_env={"pip": pip}).remote(), timeout=120)
    assert value == 42 and prefix != sys.prefix
    # Another env with the same requirements uses the same cached venv.
    again = use.options(runtime_env={"pip": pip, "env_vars": {"X": "1"}})
    assert ray.get(again.remote(), timeout=60) == (42, prefix)
    with pytest.raises(ModuleNotFoundError):
        ray.get(use.remote())

    missing = use.options(runtime_env={"pip": ["--no-index", "renv-no-such-package"]})
    with pytest.raises(ray.exceptions.RuntimeEnvSetupError) as info:
        ray.get(missing.remote(), timeout=120)
    assert "renv-no-such-package" in str(info.value)  # pip's own words
    assert "No matching distribution" in str(info.value)


@pytest.mark.ember_only  # (the install's start is not visible through Ray's API)
def test_eager_install_sets_up_the_job_env_at_init(
    start_ember: Callable[..., Any], tmp_path: Path
) -> None:
    marker = tmp_path / "hooked"
    ray = start_ember(
        runtime_env={
            "env_vars": {"MARKER": str(marker)},
            "worker_process_setup_hook": "tests.system.test_runtime_env.touch_marker",
        }
    )
    wait_until(marker.exists, 30, "the hook of the eagerly started worker")  # (no task yet)
    assert ray.get(_env_of().remote("MARKER"))[0] == str(marker)


def touch_marker() -> None:
    with open(os.environ["MARKER"], "a"):
        pass


@pytest.mark.ember_only  # (ember.testing's cluster)
def test_an_env_is_set_up_on_the_node_that_runs_the_work(make_cluster: Any, tmp_path: Path) -> None:
    import ember
    from ember.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    (tmp_path / "where.txt").write_text("shipped")
    cluster = make_cluster({"num_cpus": 1}, {"num_cpus": 1})
    other = NodeAffinitySchedulingStrategy(cluster.nodes[1].node_id, soft=False)
    env = {"working_dir": str(tmp_path), "env_vars": {"ON": "other"}}

    @ember.remote
    def read() -> tuple[str, str | None, str]:
        with open("where.txt") as f:
            return f.read(), os.environ.get("ON"), ember.get_runtime_context().get_node_id()

    @ember.remote
    class Reader:
        def read(self) -> tuple[str, str | None, str]:
            return ember.get(read.remote())  # (a nested task inherits the env)

    pinned = read.options(runtime_env=env, scheduling_strategy=other)
    assert ember.get(pinned.remote(), timeout=60) == ("shipped", "other", other.node_id)
    reader = Reader.options(runtime_env=env, scheduling_strategy=other).remote()
    assert ember.get(reader.read.remote(), timeout=60)[:2] == ("shipped", "other")


@pytest.mark.ember_only  # (Ray takes callable hooks only in init()'s env)
def test_a_setup_that_outlasts_its_timeout_fails(ray: Any) -> None:
    import time

    def slow_hook() -> None:
        time.sleep(60)

    env = {"worker_process_setup_hook": slow_hook, "config": {"setup_timeout_seconds": 1}}
    with pytest.raises(ray.exceptions.RuntimeEnvSetupError, match="setup_timeout_seconds=1"):
        ray.get(_env_of().options(runtime_env=env).remote(), timeout=60)
