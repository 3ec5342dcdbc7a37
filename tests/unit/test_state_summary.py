"""The state API's summaries and records, with plain rows."""

from __future__ import annotations

from ember._core import state_summary as ss
from ember.util.state.common import ActorState, NodeState, ObjectState, TaskState


def _task(name: str, state: str, kind: str = "NORMAL_TASK") -> dict[str, object]:
    return {"func_or_class_name": name, "type": kind, "state": state, "task_id": "ab"}


def test_tasks_are_counted_per_name_type_and_state() -> None:
    rows = [_task("f", "FINISHED")] * 3 + [
        _task("f", "RUNNING"),
        _task("A.m", "FAILED", "ACTOR_TASK"),
    ]
    counts = ss.count_tasks(rows)
    assert sorted((r["func_or_class_name"], r["state"], r["count"]) for r in counts) == [
        ("A.m", "FAILED", 1),
        ("f", "FINISHED", 3),
        ("f", "RUNNING", 1),
    ]


def test_counts_of_nodes_add_up() -> None:
    node_a = ss.count_tasks([_task("f", "FINISHED")] * 2)
    node_b = ss.count_tasks([_task("f", "FINISHED"), _task("g", "RUNNING")])
    merged = ss.merge_counts(node_a + node_b)
    assert sorted((r["func_or_class_name"], r["count"]) for r in merged) == [("f", 3), ("g", 1)]
    assert node_a[0]["count"] == 2  # (the sources' rows are left as they were)


def test_task_summaries_have_rays_shape() -> None:
    counts = ss.count_tasks(
        [_task("f", "FINISHED")] * 2
        + [_task("f", "FAILED"), _task("A.m", "FINISHED", "ACTOR_TASK")]
        + [_task("A.__init__", "FINISHED", "ACTOR_CREATION_TASK")]
    )
    s = ss.task_summaries(counts)
    assert s["summary"]["f"] == {
        "func_or_class_name": "f",
        "type": "NORMAL_TASK",
        "state_counts": {"FINISHED": 2, "FAILED": 1},
    }
    assert (s["total_tasks"], s["total_actor_tasks"], s["total_actor_scheduled"]) == (3, 1, 1)
    assert s["summary_by"] == "func_name"


def test_actor_summaries_count_classes_by_state() -> None:
    actors = [
        {"class_name": "A", "state": "ALIVE"},
        {"class_name": "A", "state": "ALIVE"},
        {"class_name": "A", "state": "DEAD"},
        {"class_name": "B", "state": "PENDING_CREATION"},
    ]
    s = ss.actor_summaries(actors)
    assert s["total_actors"] == 4
    assert s["summary"]["A"] == {"class_name": "A", "state_counts": {"ALIVE": 2, "DEAD": 1}}
    assert s["summary_by"] == "class"


def test_object_summaries_count_references_sizes_and_holders() -> None:
    ref = {
        "call_site": "disabled",
        "task_status": "FINISHED",
        "reference_type": "LOCAL_REFERENCE",
        "object_size": 2**20,
        "pid": 1,
        "ip": "10.0.0.1",
    }
    rows = [
        ref,
        {**ref, "pid": 2, "reference_type": "USED_BY_PENDING_TASK"},
        {**ref, "object_size": -1},
    ]
    s = ss.object_summaries(rows)
    entry = s["summary"]["disabled"]
    assert entry["total_objects"] == 3 and s["total_objects"] == 3
    assert entry["total_size_mb"] == 2.0  # (an unknown size, -1, counts nothing)
    assert (entry["total_num_workers"], entry["total_num_nodes"]) == (2, 1)
    assert entry["ref_type_counts"] == {"LOCAL_REFERENCE": 2, "USED_BY_PENDING_TASK": 1}
    assert s["callsite_enabled"] is False


def test_a_record_is_built_from_a_row_and_reads_like_a_dict() -> None:
    row = {"actor_id": "aa", "class_name": "A", "state": "ALIVE", "num_restarts": 2, "extra": 1}
    brief = ActorState.from_row(row, detail=False)
    assert brief.actor_id == "aa" and brief["state"] == "ALIVE" and brief.get("name") is None
    assert brief.num_restarts is None  # a detail column
    assert ActorState.from_row(row).num_restarts == 2
    assert "extra" not in ActorState.from_row(row).asdict()


def test_columns_are_rays() -> None:
    assert "state" in TaskState.filterable_columns()
    assert "events" not in TaskState.base_columns() and "events" in TaskState.detail_columns()
    assert ObjectState.list_columns()[:5] == [
        "object_id",
        "object_size",
        "task_status",
        "attempt_number",
        "reference_type",
    ]
    assert "resources_total" not in NodeState.filterable_columns()


def test_humanify_shows_sizes_and_times() -> None:
    shown = ObjectState.humanify({"object_size": 3 * 2**20})
    assert shown["object_size"] == "3.000 MiB"
    shown = NodeState.humanify({"resources_total": {"CPU": 2.0, "memory": 2**30}})
    assert shown["resources_total"] == {"CPU": 2.0, "memory": "1.000 GiB"}
