"""The owner's event ring, the node's task table and the Chrome trace, with plain values."""

from __future__ import annotations

import json
import time

import pytest

from ember._core import error_types
from ember._core import task_events as te
from ember._core.resources import shape_of
from ember._core.timeline import chrome_trace

NODE = bytes.fromhex("aa" * 16)
WORKER = bytes.fromhex("bb" * 12)
JOB = bytes.fromhex("01000000")


def tid(n: int) -> bytes:
    return n.to_bytes(12, "big")


def submitted(n: int, t: float = 1.0, args: list[bytes] | None = None, **kw: object) -> tuple:
    kind = kw.get("type", te.NORMAL_TASK)
    shape = [list(p) for p in shape_of({"CPU": 1})]
    return (te.SUBMITTED, tid(n), t, kind, kw.get("name", "f"), kw.get("cls", ""),
            kw.get("actor", b""), JOB, b"", shape, args or [])  # fmt: skip


def life(n: int, t: float = 1.0, error: list[str] | None = None) -> list[tuple]:
    """A task's events from submission to its end, as an owner ships them."""
    ran = [t + 0.2, t + 0.5, 4321, WORKER]
    return [
        submitted(n, t),
        (te.PUSHED, tid(n), t + 0.1, NODE, WORKER, False),
        (te.ENDED, tid(n), t + 0.6, ran, error),
    ]


def feed(table: te.TaskTable, events: list[tuple], dropped: int = 0) -> None:
    """Give the table events as an owner ships them (errors given as their type and text)."""
    table.add(te.to_wire(events, tuple), dropped)


def test_buffer_drops_the_oldest_and_counts_them() -> None:
    buf = te.EventBuffer(3)
    for i in range(5):
        buf.record((te.ARGS_READY, tid(i), 0.0))
    events, dropped = buf.drain()
    assert [e[1] for e in events] == [tid(2), tid(3), tid(4)]
    assert dropped == 2
    buf.record((te.ARGS_READY, tid(9), 0.0))
    assert buf.drain() == ([(te.ARGS_READY, tid(9), 0.0)], 0)
    assert buf.dropped == 2
    with pytest.raises(ValueError, match="room for 1 event"):
        te.EventBuffer(0)


def test_a_finished_task_row_has_rays_fields() -> None:
    table = te.TaskTable()
    feed(table, life(1))
    (row,) = table.rows(detail=False)
    assert row == {
        "task_id": tid(1).hex(),
        "attempt_number": 0,
        "name": "f",
        "state": "FINISHED",
        "job_id": "01000000",
        "actor_id": None,
        "type": "NORMAL_TASK",
        "func_or_class_name": "f",
        "parent_task_id": None,
        "node_id": NODE.hex(),
        "worker_id": WORKER.hex(),
        "worker_pid": 4321,
        "error_type": None,
    }
    (full,) = table.rows(detail=True)
    assert [e["state"] for e in full["events"]] == [
        "PENDING_NODE_ASSIGNMENT",
        "SUBMITTED_TO_WORKER",
        "RUNNING",
        "FINISHED",
    ]
    assert full["required_resources"] == {"CPU": 1.0}
    assert (full["creation_time_ms"], full["start_time_ms"], full["end_time_ms"]) == (
        1000,
        1200,
        1500,
    )
    assert full["error_message"] is None


def test_states_follow_the_events_one_batch_at_a_time() -> None:
    table = te.TaskTable()
    feed(table, [submitted(1, args=[tid(7) + b"\0\0\0\1"])])
    assert table.rows(False)[0]["state"] == "PENDING_ARGS_AVAIL"
    feed(table, [(te.ARGS_READY, tid(1), 1.1)])
    assert table.rows(False)[0]["state"] == "PENDING_NODE_ASSIGNMENT"
    feed(table, [(te.PUSHED, tid(1), 1.2, NODE, WORKER, False)])
    row = table.rows(True)[0]
    assert row["state"] == "SUBMITTED_TO_WORKER"
    assert row["end_time_ms"] is None
    assert row["arg_object_ids"] == [(tid(7) + b"\0\0\0\1").hex()]


def test_a_failed_attempt_then_a_retry_counts_attempts() -> None:
    table = te.TaskTable()
    err = ["TASK_EXECUTION_EXCEPTION", "ValueError: no\nTraceback ..."]
    ran = [1.2, 1.3, 11, WORKER]
    feed(
        table,
        [
            submitted(1),
            (te.PUSHED, tid(1), 1.1, NODE, WORKER, False),
            (te.RAN, tid(1), 1.35, ran, err),
            (te.PUSHED, tid(1), 1.4, NODE, WORKER, False),
            (te.RAN, tid(1), 1.7, [1.5, 1.6, 11, WORKER], err),
            (te.ENDED, tid(1), 1.7, None, err),
        ],
    )
    (row,) = table.rows(True)
    assert row["attempt_number"] == 1
    assert row["state"] == "FAILED"
    assert row["error_type"] == "TASK_EXECUTION_EXCEPTION"
    assert row["error_message"].startswith("ValueError: no")
    states = [e["state"] for e in row["events"]]
    assert states.count("FAILED") == 2 and states[-1] == "FAILED"


def test_a_task_that_failed_without_running() -> None:
    table = te.TaskTable()
    feed(table, [submitted(1), (te.ENDED, tid(1), 2.0, None, ["WORKER_DIED", "gone"])])
    row = table.rows(True)[0]
    assert (row["state"], row["error_type"], row["worker_pid"]) == ("FAILED", "WORKER_DIED", None)
    assert row["end_time_ms"] == 2000


def test_actor_rows_name_class_and_method() -> None:
    table = te.TaskTable()
    actor = b"\x05" * 12
    feed(
        table,
        [
            submitted(1, type=te.ACTOR_CREATION_TASK, name="Counter", cls="Counter", actor=actor),
            submitted(2, type=te.ACTOR_TASK, name="incr", cls="Counter", actor=actor),
        ],
    )
    rows = table.rows(False)
    assert [r["name"] for r in rows] == ["Counter.__init__", "Counter.incr"]
    assert [r["func_or_class_name"] for r in rows] == ["Counter.__init__", "Counter.incr"]
    assert {r["actor_id"] for r in rows} == {actor.hex()}


def test_events_of_a_task_whose_submission_was_dropped_still_make_a_row() -> None:
    table = te.TaskTable()
    feed(table, [(te.ENDED, tid(3), 5.0, [4.0, 4.5, 9, WORKER], None)], dropped=1)
    assert table.rows(False)[0]["state"] == "FINISHED"
    assert "1 task events were dropped" in table.warnings()[0]


def test_the_table_evicts_the_oldest_finished_first() -> None:
    table = te.TaskTable(max_tasks=3)
    feed(table, [submitted(1)])  # never ends
    for n in (2, 3, 4):
        feed(table, life(n))
    assert [r["task_id"] for r in table.rows(False)] == [tid(n).hex() for n in (1, 3, 4)]
    feed(table, [submitted(5), submitted(6)])
    # Finished ones go first; then, with none left, the oldest submitted.
    assert [r["task_id"] for r in table.rows(False)] == [tid(n).hex() for n in (1, 5, 6)]
    feed(table, [submitted(7)])
    assert [r["task_id"] for r in table.rows(False)] == [tid(n).hex() for n in (5, 6, 7)]
    assert table.evicted == 4
    assert "4 tasks were evicted" in table.warnings()[0]
    with pytest.raises(ValueError, match="room for 1 task"):
        te.TaskTable(0)


def test_error_types_are_rays() -> None:
    assert error_types.error_type(["RayTaskError(ValueError)", "RayTaskError"]) == (
        "TASK_EXECUTION_EXCEPTION"
    )
    assert error_types.error_type(["RayTaskError"], ["TaskCancelledError"]) == "TASK_CANCELLED"
    assert error_types.error_type(["WorkerCrashedError", "RayError"]) == "WORKER_DIED"
    assert error_types.error_type(["ActorDiedError", "RayActorError"]) == "ACTOR_DIED"
    assert error_types.error_type(["Weird"]) == "TASK_EXECUTION_EXCEPTION"


def test_chrome_trace_has_a_box_per_run_on_its_workers_row_and_arrows() -> None:
    table = te.TaskTable()
    feed(table, life(1, t=1.0))
    out_of_1 = tid(1) + (1).to_bytes(4, "big")
    feed(
        table,
        [
            submitted(2, t=2.0, args=[out_of_1], name="g"),
            (te.ARGS_READY, tid(2), 2.0),
            (te.PUSHED, tid(2), 2.1, NODE, WORKER, False),
            (te.ENDED, tid(2), 2.6, [2.2, 2.5, 4321, WORKER], ["TASK_EXECUTION_EXCEPTION", "x"]),
            submitted(3, t=3.0),  # not run: no box
        ],
    )
    runs = table.runs(False)
    assert [(r["node_id"], r["worker_id"], r["worker_pid"]) for r in runs] == [
        (NODE.hex(), WORKER.hex(), 4321)
    ]
    trace = json.loads(json.dumps(chrome_trace(runs, {NODE.hex(): "10.0.0.7"})))  # (as saved)
    boxes = [e for e in trace if e["ph"] == "X"]
    assert [(b["name"], b["pid"], b["tid"]) for b in boxes] == [("f", 1, 4321), ("g", 1, 4321)]
    assert (boxes[0]["ts"], boxes[0]["dur"]) == (0, 300_000)  # (from the first start)
    assert (boxes[1]["ts"], boxes[1]["dur"]) == (1_000_000, 300_000)
    assert boxes[1]["args"]["task_id"] == tid(2).hex() and boxes[1]["args"]["failed"]
    assert "failed" not in boxes[0]["args"]
    names = {e["args"]["name"] for e in trace if e["ph"] == "M" and "name" in e["args"]}
    assert names == {f"Node 10.0.0.7 {NODE.hex()[:12]}", f"worker 4321 ({WORKER.hex()[:12]})"}
    start, finish = (e for e in trace if e["ph"] in "sf")
    assert start["id"] == finish["id"] and start["ts"] < finish["ts"]
    assert boxes[0]["ts"] <= start["ts"] <= boxes[0]["ts"] + boxes[0]["dur"]
    assert finish["ts"] == boxes[1]["ts"] and finish["bp"] == "e"


def test_a_trace_of_100k_tasks_is_quick() -> None:
    """The target is 2 s for the whole ``timeline()``, which this is most of; no timed
    assertion (a loaded machine is slow), the time is printed."""
    table = te.TaskTable(max_tasks=100_000)
    for n in range(100_000):
        feed(table, life(n, t=1.0 + n * 1e-4))
    begin = time.perf_counter()
    trace = chrome_trace(table.runs(False))
    json.dumps(trace)
    elapsed = time.perf_counter() - begin
    assert len([e for e in trace if e["ph"] == "X"]) == 100_000
    print(f"trace of 100k tasks built and dumped in {elapsed:.2f}s")


def test_rows_are_made_only_for_the_limit_when_there_is_no_filter() -> None:
    from ember._core import state_filters

    table = te.TaskTable()
    for n in range(5):
        feed(table, life(n))
    rows = table.rows(False)
    assert not isinstance(rows, list) and len(rows) == 5
    first, total = state_filters.select(rows, [], 2)
    assert total == 5 and [r["task_id"] for r in first] == [tid(0).hex(), tid(1).hex()]
    failed, total = state_filters.select(table.rows(True), [["state", "=", "finished"]], 1)
    assert total == 5 and len(failed) == 1 and "events" in failed[0]


def test_a_batch_goes_on_the_wire_as_one_flat_list() -> None:
    boom = ValueError("boom")
    events = [
        (te.ARGS_READY, tid(1), 1.0),
        (te.RAN, tid(1), 2.0, None, boom),
        (te.ENDED, tid(1), 3.0, (2.5, 2.9, 7, WORKER), None),
    ]
    wire = te.to_wire(events, lambda e: (type(e).__name__, str(e)))
    assert wire == [
        te.ARGS_READY, tid(1), 1.0,
        te.RAN, tid(1), 2.0, 0.0, 0.0, 0, b"", "ValueError", "boom",
        te.ENDED, tid(1), 3.0, 2.5, 2.9, 7, WORKER, None, None,
    ]  # fmt: skip
    assert len(wire) == sum(te.WIDTH[e[0]] for e in events)


def test_an_ended_task_is_kept_packed_and_reads_back_field_for_field() -> None:
    table = te.TaskTable()
    message = "Traceback \u2603 \udcff"  # (any text, even a lone surrogate, comes back)
    shape = tuple(shape_of({"CPU": 1}))
    full = (
        tid(1).hex(), 2, te.ACTOR_TASK, "A.f", "07" * 16, JOB.hex(), tid(2).hex(), shape,
        (bytes(range(28)), b"x"), NODE.hex(), WORKER.hex(), 99, te.FAILED,
        (te.PENDING_ARGS_AVAIL, 1.0, te.RUNNING, 1.5, te.FAILED, 2.0), 1.0, 1.5, 2.0,
        ("ValueError", message), True,
    )  # fmt: skip
    empty = (tid(3).hex(), 0, te.NORMAL_TASK, "", None, "", None, (), (), None, None, None,
             te.FINISHED, (), 0.0, 0.0, 0.0, None, True)  # fmt: skip
    for ended in (full, empty):
        packed = table._packed(ended)
        assert type(packed) is bytes and table._unpacked(bytes.fromhex(ended[0]), packed) == ended
    # Its fields are the record's, in the record's order (how it becomes one again).
    names = te._Record.__slots__
    assert (names[te._TASK_ID], names[te._EVENTS], names[te._OVER]) == ("task_id", "events", "over")
    assert len(full) == te._OVER + 1 == len(names) - 1
    # What the table keeps of a task once it is over.
    feed(table, life(4, error=["TASK_EXECUTION_EXCEPTION", "x"]))
    assert type(table._tasks[tid(4)]) is bytes
    assert table.rows(True)[0]["error_message"] == "x"


def test_shared_values_are_kept_once_and_dropped_once_no_task_uses_them() -> None:
    table = te.TaskTable(max_tasks=10)
    for n in range(10):
        feed(table, life(n))
    values = len(table._values)
    assert values < 12  # (name, type, state, job, node, worker, shape...: once for all)
    for n in range(100, 100 + 3 * te._MIN_VALUES):  # each with a parent of its own
        parent = tid(n + 10**6)
        submit = te.SUBMITTED, tid(n), 1.0, te.NORMAL_TASK, "g", "", b"", JOB, parent, [], []
        feed(table, [submit, *life(n)[1:]])
    assert len(table) == 10 and len(table._values) <= 2 * te._MIN_VALUES
    rows = table.rows(False)
    assert [r["parent_task_id"] for r in rows] == [tid(n + 10**6).hex() for n in range(
        100 + 3 * te._MIN_VALUES - 10, 100 + 3 * te._MIN_VALUES)]  # fmt: skip
    assert {r["name"] for r in rows} == {"g"}


def test_eviction_keeps_its_order_with_packed_records() -> None:
    table = te.TaskTable(max_tasks=3)
    feed(table, [submitted(1)])  # (still pending: stays while others finished)
    for n in (2, 3):
        feed(table, life(n))
    feed(table, [submitted(4), *life(3, t=9.0)])  # 3 runs again, after 2
    feed(table, life(4)[1:])
    assert [r["task_id"] for r in table.rows(False)] == [tid(n).hex() for n in (1, 3, 4)]
    assert table.evicted == 1
    # The order of ending holds the table's own keys, not copies (a batch brings its own).
    assert list(table._keys) == [tid(1)] and all(
        any(key is k for k in table._tasks) for key in table._over if key == tid(4)
    )


def test_a_task_table_answers_a_query_as_the_generic_filter_does() -> None:
    from ember._core import state_filters

    table = te.TaskTable()
    for n in range(30):
        error = ["TASK_EXECUTION_EXCEPTION", f"boom {n}"] if n % 3 == 0 else None
        events = life(n, t=float(n), error=error)
        if n % 5 == 0:
            events[0] = submitted(n, t=float(n), name="g")
        feed(table, events)
    feed(table, [submitted(30), (te.PUSHED, tid(30), 31.0, NODE, WORKER, True)])  # (not over)
    cases = [
        [],
        [["state", "=", "finished"]],
        [["state", "!=", "FINISHED"]],
        [["name", "=", "G"], ["state", "=", "FAILED"]],
        [["func_or_class_name", "!=", "f"]],
        [["attempt_number", "<", "1"]],
        [["worker_pid", ">", 4000]],
        [["worker_pid", "=", "4321"]],
        [["task_id", "=", tid(7).hex().upper()]],
        [["error_type", "=", "TASK_EXECUTION_EXCEPTION"]],
        [["start_time_ms", ">", 10_000]],
        [["error_message", "=", "boom 9"]],
        [["node_id", "=", NODE.hex()], ["creation_time_ms", "<=", 5000]],
        [["no_such_column", "=", "x"]],
    ]
    for filters in cases:
        for detail in (False, True):
            for limit in (0, 3, 100):
                found = table.rows(detail)
                if not detail and state_filters.needs_detail(found, filters):
                    found = table.rows(True)
                want = state_filters.select(found, filters, limit)
                assert table.select(detail, filters, limit) == want, (filters, detail, limit)
    summary = [sorted(map(str, r.items())) for r in table.rows(False)]
    assert len(summary) == 31  # (the live record was packed to be tested, not kept packed)
    assert isinstance(table._tasks[tid(30)], te._Record)


def test_the_summary_counts_packed_records_as_rows() -> None:
    from ember._core import state_summary

    table = te.TaskTable()
    for n in range(6):
        feed(table, life(n, error=["X", "y"] if n % 2 else None))
    feed(table, [submitted(9)])
    assert state_summary.count_groups(table.groups()) == state_summary.count_tasks(
        table.rows(False)
    )


def test_a_task_run_again_after_it_ended_is_a_new_attempt() -> None:
    table = te.TaskTable()
    feed(table, life(1))
    feed(table, [submitted(1, t=5.0), (te.PUSHED, tid(1), 5.1, NODE, WORKER, False)])
    (row,) = table.rows(True)
    assert (row["attempt_number"], row["state"], row["end_time_ms"]) == (
        1,
        "SUBMITTED_TO_WORKER",
        None,
    )
    assert [e["state"] for e in row["events"]][-3:] == [
        "FINISHED",
        "PENDING_NODE_ASSIGNMENT",
        "SUBMITTED_TO_WORKER",
    ]
    feed(table, [(te.ENDED, tid(1), 6.0, [5.2, 5.9, 4321, WORKER], None)])
    assert table.rows(False)[0]["state"] == "FINISHED" and len(table) == 1


def test_packed_batches_are_merged_when_the_table_is_read_or_too_many_wait() -> None:
    import msgpack

    opened: list[int] = []

    def unpack(batch: bytes) -> list:
        opened.append(len(batch))
        return msgpack.unpackb(batch)

    merges: list[int] = []
    table = te.TaskTable(unpack=unpack, max_pending_bytes=1000, merged=lambda: merges.append(1))
    batch = msgpack.packb(te.to_wire(life(1), tuple))
    table.add_packed(batch, dropped=2)
    assert opened == []  # (kept as it came)
    assert [r["state"] for r in table.rows(False)] == ["FINISHED"] and len(opened) == 1
    assert table.rows(False) and merges == [1]  # (told once per merge, none without)
    assert "2 task events were dropped" in table.warnings()[0]
    for n in range(2, 100):
        table.add_packed(msgpack.packb(te.to_wire(life(n), tuple)))
    assert 1 < len(opened) < 99  # (merged once the waiting batches passed 1000 bytes)
    assert len(table) == 99 and len(opened) == 99


def test_rows_are_named_by_node_address_and_id_and_by_worker_pid_and_id() -> None:
    other = bytes.fromhex("cc" * 16)
    runs = [
        {"node_id": NODE.hex(), "worker_id": WORKER.hex(), "worker_pid": 7, "runs": []},
        {"node_id": other.hex(), "worker_id": None, "worker_pid": None, "runs": []},
    ]
    meta = [(e["name"], e["pid"], e["tid"], e["args"]) for e in chrome_trace(runs, {})]
    assert meta == [
        ("process_name", 1, 0, {"name": f"Node {NODE.hex()[:12]}"}),
        ("process_sort_index", 1, 0, {"sort_index": 1}),
        ("thread_name", 1, 7, {"name": f"worker 7 ({WORKER.hex()[:12]})"}),
        ("process_name", 2, 0, {"name": f"Node {other.hex()[:12]}"}),
        ("process_sort_index", 2, 0, {"sort_index": 2}),
        ("thread_name", 2, 0, {"name": "worker 0 (?)"}),
    ]
    ips = {NODE.hex(): "10.0.0.7", other.hex(): "10.0.0.8"}
    names = [e["args"]["name"] for e in chrome_trace(runs, ips) if e["name"] == "process_name"]
    assert names == [f"Node 10.0.0.7 {NODE.hex()[:12]}", f"Node 10.0.0.8 {other.hex()[:12]}"]


def test_a_task_with_nothing_ahead_of_it_runs_from_its_push() -> None:
    table = te.TaskTable()
    feed(table, [submitted(1), (te.PUSHED, tid(1), 1.1, NODE, WORKER, True)])
    (row,) = table.rows(True)
    assert row["state"] == "RUNNING"
    assert [(e["state"], e["created_ms"]) for e in row["events"][1:]] == [
        ("SUBMITTED_TO_WORKER", 1100),
        ("RUNNING", 1100),
    ]
    # The worker's own start replaces the owner's guess; no second RUNNING step.
    feed(table, [(te.ENDED, tid(1), 1.6, [1.2, 1.5, 11, WORKER], None)])
    (row,) = table.rows(True)
    assert [(e["state"], e["created_ms"]) for e in row["events"][1:]] == [
        ("SUBMITTED_TO_WORKER", 1100),
        ("RUNNING", 1200),
        ("FINISHED", 1500),
    ]
    assert row["start_time_ms"] == 1200


def test_a_task_queued_behind_another_runs_when_the_one_ahead_is_done() -> None:
    table = te.TaskTable()
    feed(
        table,
        [
            submitted(1),
            submitted(2),
            (te.PUSHED, tid(1), 1.1, NODE, WORKER, True),
            (te.PUSHED, tid(2), 1.1, NODE, WORKER, False),
        ],
    )
    assert [r["state"] for r in table.rows(False)] == ["RUNNING", "SUBMITTED_TO_WORKER"]
    feed(table, [(te.ENDED, tid(1), 2.0, [1.2, 1.9, 11, WORKER], None), (te.STARTED, tid(2), 2.0)])
    assert [r["state"] for r in table.rows(False)] == ["FINISHED", "RUNNING"]
    # A start learned late (the task ended meanwhile) or of an unknown task changes nothing.
    feed(table, [(te.ENDED, tid(2), 3.0, [2.0, 2.9, 11, WORKER], None), (te.STARTED, tid(2), 3.1)])
    feed(table, [(te.STARTED, tid(9), 3.2)])
    assert [r["state"] for r in table.rows(False)] == ["FINISHED", "FINISHED"]
    assert table.rows(True)[1]["events"][-2]["state"] == "RUNNING"
