"""Task events with real processes: owners record, their nodes merge, the state query and
the timeline read them."""

from __future__ import annotations

import errno
import json
import os
from typing import Any

import pytest

from ember._api.state import query
from tests._helpers import wait_until

pytestmark = pytest.mark.ember_only  # (Ember's rows and trace; list_tasks is tested on Ray)

WAIT = 20.0  # events reach the node within about a second


def _rows(ids: list[str], detail: bool = False) -> dict[str, dict[str, Any]]:
    """The rows of those tasks, once each has ended (FINISHED or FAILED)."""

    def ended() -> dict[str, dict[str, Any]] | None:
        rows = {r["task_id"]: r for r in query("tasks", detail=detail, limit=10_000).rows}
        done = all(rows.get(i, {}).get("state") in ("FINISHED", "FAILED") for i in ids)
        return rows if done else None

    return wait_until(ended, WAIT, f"the rows of tasks {ids}")


def test_finished_and_failed_tasks_reach_the_node(ray: Any) -> None:
    @ray.remote
    def add(x: int) -> int:
        return x + 1

    @ray.remote(max_retries=0)
    def fails() -> None:
        raise ValueError("no good")

    first = add.remote(1)
    second = add.remote(first)
    bad = fails.remote()
    assert ray.get(second) == 3
    with pytest.raises(ValueError):
        ray.get(bad)
    ids = [r.task_id().hex() for r in (first, second, bad)]
    rows = _rows(ids, detail=True)
    one, two, failed = (rows[i] for i in ids)
    node = ray.get_runtime_context().get_node_id()
    for row in (one, two, failed):
        assert row["type"] == "NORMAL_TASK" and row["attempt_number"] == 0
        assert row["node_id"] == node and row["worker_pid"] not in (None, os.getpid())
        assert row["job_id"] == ray.get_runtime_context().get_job_id()
        assert row["required_resources"] == {"CPU": 1}
        assert row["start_time_ms"] <= row["end_time_ms"]
    qualname = add._function.__qualname__  # (Ray's name of a function defined in another)
    assert (one["name"], one["func_or_class_name"], one["state"]) == (
        qualname,
        qualname,
        "FINISHED",
    )
    assert [e["state"] for e in two["events"]] == [
        "PENDING_ARGS_AVAIL",
        "PENDING_NODE_ASSIGNMENT",
        "SUBMITTED_TO_WORKER",
        "RUNNING",
        "FINISHED",
    ]
    assert two["arg_object_ids"] == [first.hex()]
    assert (failed["state"], failed["error_type"]) == ("FAILED", "TASK_EXECUTION_EXCEPTION")
    assert "ValueError: no good" in failed["error_message"]
    assert "Traceback" in failed["error_message"]
    short = query("tasks", filters=[("state", "=", "FAILED")]).rows
    assert [r["task_id"] for r in short] == [ids[2]]
    assert "events" not in short[0]


def test_enable_task_events_false_leaves_no_record(ray: Any) -> None:
    @ray.remote
    def f() -> int:
        return 1

    @ray.remote
    class Quiet:
        def hello(self) -> int:
            return 1

    quiet = f.options(enable_task_events=False).remote()
    actor = Quiet.options(enable_task_events=False).remote()
    call = actor.hello.remote()
    assert ray.get([quiet, call]) == [1, 1]
    marker = f.remote()  # recorded after the others: once it is in, they would be too
    ray.get(marker)
    rows = _rows([marker.task_id().hex()])
    assert quiet.task_id().hex() not in rows and call.task_id().hex() not in rows
    assert not [r for r in rows.values() if r["actor_id"]]


def test_drops_are_counted_and_shown(start_ember: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # A ring of 4 events (a task records 3) and no shipping but on flush; a node table of
    # 1 task.
    monkeypatch.setenv("EMBER_TASK_EVENTS_MAX_NUM_STATUS_EVENTS_BUFFER_ON_WORKER", "4")
    monkeypatch.setenv("EMBER_TASK_EVENTS_REPORT_INTERVAL_MS", "600000")
    monkeypatch.setenv("EMBER_TASK_EVENTS_MAX_NUM_TASK_IN_GCS", "1")
    ray = start_ember(num_cpus=1)

    @ray.remote
    def f(i: int) -> int:
        return i

    assert ray.get([f.remote(i) for i in range(10)]) == list(range(10))
    ray.timeline()  # (ships this process's events first)

    def warned() -> list[str]:
        return query("tasks").warnings

    warnings = wait_until(warned, WAIT, "the drop warnings", until=lambda w: len(w) == 2)
    assert "task events were dropped" in warnings[0]
    assert "TASK_EVENTS_MAX_NUM_STATUS_EVENTS_BUFFER_ON_WORKER" in warnings[0]
    assert "tasks were evicted" in warnings[1]
    assert len(query("tasks").rows) == 1


def test_a_nested_task_is_recorded_by_the_worker_that_owns_it(ray: Any) -> None:
    @ray.remote
    def inner() -> int:
        return 1

    @ray.remote
    def outer() -> str:
        ray.get(inner.remote())
        return ray.get_runtime_context().get_task_id()

    outer_ref = outer.remote()
    outer_id = ray.get(outer_ref)

    def child() -> dict[str, Any] | None:
        rows = query("tasks", filters=[("parent_task_id", "=", outer_id)]).rows
        return rows[0] if rows and rows[0]["state"] == "FINISHED" else None

    row = wait_until(child, WAIT, "the nested task's row")
    assert row["name"].endswith("inner")
    # Its owner, the worker that ran outer, shipped it (the driver never knew of it).
    assert outer_ref.task_id().hex() == outer_id


def test_actor_creation_and_calls_appear(ray: Any) -> None:
    @ray.remote
    class Counter:
        def __init__(self) -> None:
            self.n = 0

        def incr(self) -> int:
            self.n += 1
            return self.n

    counter = Counter.remote()
    calls = [counter.incr.remote() for _ in range(3)]
    assert ray.get(calls) == [1, 2, 3]
    actor_id = counter._actor_id.hex()
    rows = _rows([c.task_id().hex() for c in calls])
    mine = [r for r in rows.values() if r["actor_id"] == actor_id]
    created = [r for r in mine if r["type"] == "ACTOR_CREATION_TASK"]
    assert [r["name"].rsplit(".", 2)[-2:] for r in created] == [["Counter", "__init__"]]
    called = [r for r in mine if r["type"] == "ACTOR_TASK"]
    assert [r["func_or_class_name"].rsplit(".", 2)[-2:] for r in called] == [
        ["Counter", "incr"]
    ] * 3
    assert {r["state"] for r in called} == {"FINISHED"}
    assert len({r["worker_pid"] for r in called}) == 1


def test_timeline_has_a_box_per_task_on_its_workers_row(ray: Any, tmp_path: Any) -> None:
    @ray.remote
    def make() -> int:
        return 1

    @ray.remote
    def take(x: int) -> int:
        return x + 1

    made = make.remote()
    refs = [made, take.remote(made), take.remote(made)]
    ray.get(refs)
    ids = {r.task_id().hex() for r in refs}
    _rows(sorted(ids))
    path = tmp_path / "trace.json"
    assert ray.timeline(filename=str(path)) is None
    trace = json.loads(path.read_text())
    boxes = [e for e in trace if e["ph"] == "X" and e["args"]["task_id"] in ids]
    assert sorted(b["name"].rsplit(".", 1)[-1] for b in boxes) == ["make", "take", "take"]
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in trace if e["name"] == "thread_name"}
    for box in boxes:
        assert threads[box["pid"], box["tid"]].startswith(f"worker {box['tid']} (")
        assert box["dur"] >= 0
    arrows = [e for e in trace if e["ph"] in ("s", "f") and e["args"]["object_id"] == made.hex()]
    assert sorted(e["ph"] for e in arrows) == ["f", "f", "s", "s"]
    assert isinstance(ray.timeline(), list)


def test_the_timeline_command_writes_a_file(
    make_cluster: Any, tmp_path: Any, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ember
    from ember.cli.main import main

    cluster = make_cluster({"num_cpus": 1}, {"num_cpus": 1, "resources": {"far": 1}})

    @ember.remote
    def here() -> str:
        return ember.get_runtime_context().get_node_id()

    near, far = here.remote(), here.options(resources={"far": 1}).remote()
    nodes = ember.get([near, far])
    assert nodes[0] != nodes[1]
    _rows([near.task_id().hex(), far.task_id().hex()])  # (the driver's node has both)
    path = tmp_path / "cli-trace.json"
    monkeypatch.setenv("EMBER_TOKEN", cluster.token)
    assert main(["timeline", "--address", cluster.address, "--output", str(path)]) == 0
    assert str(path) in capsys.readouterr().out
    trace = json.loads(path.read_text())
    boxes = [e for e in trace if e["ph"] == "X"]
    assert [b["name"] for b in boxes] == [here._function.__qualname__] * 2
    processes = {e["pid"]: e["args"]["name"] for e in trace if e["name"] == "process_name"}
    ips = {n["NodeID"]: n["NodeManagerAddress"] for n in ember.nodes()}
    assert {processes[b["pid"]] for b in boxes} == {f"Node {ips[n]} {n[:12]}" for n in nodes}
    with pytest.raises(SystemExit):
        main(["timeline", "--help"])
    assert "--address" in capsys.readouterr().out


def _fifo(tmp_path: Any, name: str) -> str:
    """A named pipe a task blocks on reading (without ember.get, which would free its CPU)
    until ``_release`` writes to it."""
    path = str(tmp_path / name)
    os.mkfifo(path)
    return path


def _release(path: str) -> None:
    def opened() -> int | None:
        try:  # (fails until the task has it open for reading)
            return os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            if e.errno != errno.ENXIO:
                raise
            return None

    fd = wait_until(opened, WAIT, f"a task reading {path}", until=lambda fd: fd is not None)
    os.write(fd, b"go")
    os.close(fd)


def _states(ids: list[str], want: list[set[str]]) -> list[str]:
    """The states of those tasks, once each is one of those wanted."""

    def now() -> list[str]:
        rows = {r["task_id"]: r["state"] for r in query("tasks", limit=10_000).rows}
        return [rows.get(i, "") for i in ids]

    return wait_until(
        now,
        WAIT,
        f"tasks {ids} in {want}",
        until=lambda s: all(x in w for x, w in zip(s, want, strict=True)),
    )


def test_a_running_task_is_running_and_one_queued_behind_it_is_not(
    start_ember: Any, tmp_path: Any
) -> None:
    from ember.util.state import list_tasks

    ray = start_ember(num_cpus=1)
    gate = _fifo(tmp_path, "gate")

    @ray.remote
    def waits(path: str) -> str:
        with open(path) as f:
            return f.read()

    @ray.remote
    def after() -> int:
        return 2

    first, second = waits.remote(gate), after.remote()
    ids = [first.task_id().hex(), second.task_id().hex()]
    queued = {"PENDING_NODE_ASSIGNMENT", "SUBMITTED_TO_WORKER"}
    _states(ids, [{"RUNNING"}, queued])
    running = list_tasks(filters=[("state", "=", "RUNNING")])
    assert [r.task_id for r in running] == ids[:1]
    _release(gate)
    assert ray.get([first, second], timeout=WAIT) == ["go", 2]
    _states(ids, [{"FINISHED"}, {"FINISHED"}])


def test_an_actors_first_call_runs_and_the_next_waits_behind_it(ray: Any, tmp_path: Any) -> None:
    gate = _fifo(tmp_path, "gate")

    @ray.remote
    class Reader:
        def read(self, path: str) -> str:
            with open(path) as f:
                return f.read()

        def echo(self, x: int) -> int:
            return x

    reader = Reader.remote()
    first, second = reader.read.remote(gate), reader.echo.remote(1)
    ids = [first.task_id().hex(), second.task_id().hex()]
    _states(ids, [{"RUNNING"}, {"SUBMITTED_TO_WORKER"}])
    _release(gate)
    assert ray.get([first, second], timeout=WAIT) == ["go", 1]
    _states(ids, [{"FINISHED"}, {"FINISHED"}])


def test_an_actor_creation_ends_when_the_actor_is_up_with_where_it_ran(ray: Any) -> None:
    @ray.remote
    class Inventory:
        def __init__(self) -> None:
            self.items: list[str] = []

    @ray.remote
    class Broken:
        def __init__(self) -> None:
            raise ValueError("no stock")

    inventory, broken = Inventory.remote(), Broken.remote()  # (never called)
    actor_ids = {inventory._actor_id.hex(), broken._actor_id.hex()}

    def created() -> dict[str, dict[str, Any]] | None:
        rows = {
            r["actor_id"]: r
            for r in query("tasks", detail=True, limit=10_000).rows
            if r["type"] == "ACTOR_CREATION_TASK" and r["actor_id"] in actor_ids
        }
        over = len(rows) == 2 and all(r["state"] in ("FINISHED", "FAILED") for r in rows.values())
        return rows if over else None

    rows = wait_until(created, WAIT, "the actors' creation rows")
    up, failed = rows[inventory._actor_id.hex()], rows[broken._actor_id.hex()]
    assert up["name"].endswith("Inventory.__init__") and up["state"] == "FINISHED"
    assert up["node_id"] == ray.get_runtime_context().get_node_id()
    assert up["worker_id"] and up["worker_pid"] not in (None, os.getpid())
    assert 0 < up["start_time_ms"] <= up["end_time_ms"]
    assert [e["state"] for e in up["events"]][-3:] == ["SUBMITTED_TO_WORKER", "RUNNING", "FINISHED"]
    assert (failed["state"], failed["error_type"]) == ("FAILED", "TASK_EXECUTION_EXCEPTION")
    assert "no stock" in failed["error_message"]


def test_a_threaded_actor_runs_up_to_max_concurrency_calls(ray: Any, tmp_path: Any) -> None:
    gates = [_fifo(tmp_path, "a"), _fifo(tmp_path, "b")]

    @ray.remote(max_concurrency=2)
    class Reader:
        def read(self, path: str) -> str:
            with open(path) as f:
                return f.read()

    reader = Reader.remote()
    calls = [reader.read.remote(g) for g in gates] + [reader.read.remote(gates[0])]
    ids = [c.task_id().hex() for c in calls]
    _states(ids, [{"RUNNING"}, {"RUNNING"}, {"SUBMITTED_TO_WORKER"}])
    for gate in gates:
        _release(gate)
    assert ray.get(calls[:2], timeout=WAIT) == ["go", "go"]
    _states(ids[2:], [{"RUNNING"}])
    _release(gates[0])
    assert ray.get(calls[2], timeout=WAIT) == "go"
