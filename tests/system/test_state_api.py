"""The state API (``ember.util.state``) against real processes: on one machine, and on a
two-node cluster where the control store merges what each node answers.

Runs unchanged on Ray through the shim (tests of Ember-only behaviour are marked), since the
records' fields are what users of Ray's state API rely on.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import pytest

from tests._helpers import wait_until


def _other_id(hex_id: str) -> str:
    """An id of the same length as ``hex_id`` that is not it."""
    return hex_id[:-2] + ("00" if hex_id[-2:] != "00" else "11")


def double(x: int) -> int:
    return 2 * x


def fails() -> None:
    raise ValueError("on purpose")


def test_list_get_and_summarize_tasks(ray: Any) -> None:
    from ember.util.state import get_task, list_tasks, summarize_tasks

    refs = [ray.remote(double).remote(i) for i in range(3)]
    assert ray.get(refs) == [0, 2, 4]
    bad = ray.remote(fails).options(max_retries=0).remote()
    with pytest.raises(Exception, match="on purpose"):
        ray.get(bad)

    def finished() -> list[Any]:
        return list_tasks(
            filters=[("func_or_class_name", "=", "double"), ("state", "=", "FINISHED")]
        )

    tasks = wait_until(finished, 30, "the tasks are recorded", until=lambda t: len(t) == 3)
    assert {t.task_id for t in tasks} == {r.task_id().hex() for r in refs}
    assert tasks[0].type == "NORMAL_TASK" and tasks[0].creation_time_ms is None  # (detail)
    assert len(list_tasks(filters=[("func_or_class_name", "=", "double")], limit=2)) == 2
    one = get_task(refs[0])
    assert one is not None and one.state == "FINISHED" and one.end_time_ms is not None
    assert {"call_site", "label_selector", "fallback_strategy"} <= set(one.asdict())
    assert get_task(refs[1].task_id().hex()).task_id == refs[1].task_id().hex()
    failed = wait_until(
        lambda: list_tasks(
            filters=[("state", "=", "FAILED"), ("func_or_class_name", "=", "fails")]
        ),
        30,
        "the failure is recorded",
        until=lambda t: len(t) == 1,
    )
    assert failed[0].error_type == "TASK_EXECUTION_EXCEPTION"
    summary = summarize_tasks()["cluster"]
    assert summary["summary"]["double"]["state_counts"]["FINISHED"] == 3
    assert summary["summary"]["double"]["type"] == "NORMAL_TASK"
    assert summary["total_tasks"] >= 4 and summary["summary_by"] == "func_name"


def test_list_and_get_nodes(ray: Any) -> None:
    from ember.util.state import get_node, list_nodes

    nodes = list_nodes()
    assert len(nodes) == 1
    node = nodes[0]
    assert node.node_id == ray.get_runtime_context().get_node_id()
    assert node.state == "ALIVE" and node.is_head_node is True
    assert node.resources_total["CPU"] == 2
    assert node["node_ip"] == node.node_ip  # (records read like dicts, as Ray's)
    assert node.start_time_ms is None  # a detail column
    assert list_nodes(detail=True)[0].start_time_ms > 0
    assert get_node(node.node_id).node_id == node.node_id
    assert get_node(_other_id(node.node_id)) is None
    # (Ray calls this answer incomplete unless told not to mind)
    assert list_nodes(filters=[("state", "=", "DEAD")], raise_on_missing_output=False) == []
    assert len(list_nodes(filters=[("state", "=", "alive")])) == 1  # (text: any case)


class Counter:
    def pid(self) -> int:
        return os.getpid()

    def node(self) -> str:
        import ember

        return ember.get_runtime_context().get_node_id()


def test_list_and_get_actors(ray: Any) -> None:
    from ember.util.state import get_actor, list_actors

    Counter_ = ray.remote(Counter)
    a = Counter_.options(name="counter-a").remote()
    pid = ray.get(a.pid.remote())
    b = Counter_.remote()
    ray.get(b.pid.remote())
    actors = list_actors(filters=[("class_name", "=", "Counter")])
    assert len(actors) == 2
    named = list_actors(filters=[("name", "=", "counter-a")])
    assert len(named) == 1
    actor = named[0]
    assert actor.actor_id == a._actor_id.hex()
    assert actor.state == "ALIVE" and actor.pid == pid
    assert actor.job_id == ray.get_runtime_context().get_job_id()
    assert actor.node_id == ray.get_runtime_context().get_node_id()
    assert actor.num_restarts is None  # a detail column
    detailed = get_actor(actor.actor_id)
    assert detailed is not None and detailed.num_restarts == 0
    assert detailed.num_restarts_due_to_node_preemption == 0
    assert {"call_site", "label_selector", "fallback_strategy"} <= set(detailed.asdict())
    assert detailed.required_resources is not None
    assert get_actor(_other_id(actor.actor_id)) is None
    ray.kill(a)
    wait_until(lambda: get_actor(actor.actor_id).state == "DEAD", 20, "the actor is dead")
    assert len(list_actors(filters=[("state", "=", "ALIVE"), ("class_name", "=", "Counter")])) == 1


def test_summarize_actors(ray: Any) -> None:
    from ember.util.state import summarize_actors

    actors = [ray.remote(Counter).remote() for _ in range(2)]
    ray.get([a.pid.remote() for a in actors])
    summary = summarize_actors()["cluster"]
    assert summary["summary"]["Counter"]["state_counts"] == {"ALIVE": 2}
    assert summary["total_actors"] >= 2 and summary["summary_by"] == "class"


def test_list_workers_shows_the_driver_and_workers(ray: Any) -> None:
    from ember.util.state import get_worker, list_workers

    @ray.remote
    def where() -> int:
        return os.getpid()

    task_pid = ray.get(where.remote())
    drivers = list_workers(filters=[("worker_type", "=", "DRIVER")])
    assert os.getpid() in [d.pid for d in drivers]
    workers = list_workers(filters=[("worker_type", "=", "WORKER"), ("is_alive", "=", "true")])
    assert task_pid in [w.pid for w in workers]
    one = next(w for w in workers if w.pid == task_pid)
    assert one.node_id == ray.get_runtime_context().get_node_id()
    found = get_worker(one.worker_id)
    assert found is not None and found.pid == task_pid


def test_list_jobs(ray: Any) -> None:
    from ember.util.state import list_jobs

    job_id = ray.get_runtime_context().get_job_id()
    jobs = [j for j in list_jobs() if j.job_id == job_id]
    assert len(jobs) == 1
    assert jobs[0].status == "RUNNING" and jobs[0].type == "DRIVER"
    assert jobs[0].driver_info.pid == str(os.getpid())


@pytest.mark.ember_only  # (Ray finds jobs by submission id only: a driver's has none)
def test_get_job_by_its_id(ray: Any) -> None:
    from ember.util.state import get_job

    job_id = ray.get_runtime_context().get_job_id()
    job = get_job(job_id)
    assert job is not None and job.job_id == job_id and job.status == "RUNNING"
    assert get_job(_other_id(job_id)) is None


def test_list_and_get_placement_groups(ray: Any) -> None:
    from ember.util.placement_group import placement_group, remove_placement_group
    from ember.util.state import get_placement_group, list_placement_groups

    pg = placement_group([{"CPU": 1}], name="pg-state")
    ray.get(pg.ready(), timeout=30)
    groups = list_placement_groups(filters=[("name", "=", "pg-state")])
    assert len(groups) == 1
    assert groups[0].placement_group_id == pg.id.hex() and groups[0].state == "CREATED"
    detailed = get_placement_group(pg.id.hex())
    assert detailed is not None and len(detailed.bundles) == 1
    remove_placement_group(pg)
    wait_until(
        lambda: get_placement_group(pg.id.hex()).state == "REMOVED", 20, "the group is removed"
    )


def test_a_filter_on_a_detail_column_holds_without_detail(ray: Any) -> None:
    """The rows are filtered whole, then the detail columns left out (as Ray does)."""
    from ember.util.state import list_actors, list_tasks

    # (by the runtime's own name: through the Ray shim, ember.util is a second module, whose
    # classes Ray's options refuse)
    util = importlib.import_module(f"{ray.__name__}.util")
    pg = util.placement_group([{"CPU": 1}])
    ray.get(pg.ready(), timeout=30)
    in_group = util.scheduling_strategies.PlacementGroupSchedulingStrategy(pg)
    a = ray.remote(Counter).options(num_cpus=0, scheduling_strategy=in_group).remote()
    ray.get(a.pid.remote())
    ray.get(ray.remote(double).options(scheduling_strategy=in_group).remote(1))
    by_group = [("placement_group_id", "=", pg.id.hex())]
    (actor,) = list_actors(filters=by_group)
    assert actor.actor_id == a._actor_id.hex() and actor.placement_group_id is None
    wait_until(
        lambda: any(t.name == "double" for t in list_tasks(filters=by_group)),
        20,
        "the task in the group is listed",
    )
    assert all(t.placement_group_id is None for t in list_tasks(filters=by_group))


def test_list_and_get_objects(ray: Any) -> None:
    from ember.util.state import get_objects, list_objects, summarize_objects

    ref = ray.put(b"x" * (2 << 20))  # (in the shared-memory store)
    mine = list_objects(filters=[("object_id", "=", ref.hex())])
    assert mine, "the object is listed"
    assert all(o.object_size >= 2 << 20 for o in mine)
    held = [o for o in mine if o.pid == os.getpid()]
    assert held and held[0].reference_type == "LOCAL_REFERENCE" and held[0].type == "DRIVER"
    assert held[0].attempt_number == 1  # (counting the run that made it, as in Ray)
    assert list_objects(filters=[("object_id", "=", ref.hex()), ("attempt_number", "=", 1)])
    assert {o.object_id for o in get_objects(ref.hex())} == {ref.hex()}
    assert get_objects(_other_id(ref.hex())) is None
    summary = summarize_objects()["cluster"]
    assert summary["total_objects"] >= 1 and summary["total_size_mb"] >= 2
    for entry in summary["summary"].values():
        assert sum(entry["task_attempt_number_counts"].values()) == entry["total_objects"]


def test_bad_filters_are_refused(ray: Any) -> None:
    from ember.util.state import list_nodes, list_workers

    for listing in (list_nodes, list_workers):
        # (by name: through the Ray shim, ember.util.state.exception is a second module)
        with pytest.raises(Exception, match="not_a_column") as refused:
            listing(filters=[("not_a_column", "=", "x")])
        assert type(refused.value).__name__ == "RayStateApiException"
    with pytest.raises(ValueError, match="predicate"):
        list_nodes(filters=[("state", "~", "ALIVE")])


@pytest.mark.ember_only
def test_an_unknown_address_is_refused(ray: Any) -> None:
    import socket

    from ember.util.state import list_nodes
    from ember.util.state.exception import ServerUnavailable

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # (nothing listens on it once closed)
    with pytest.raises(ServerUnavailable, match=f"127.0.0.1:{port}"):
        list_nodes(address=f"127.0.0.1:{port}", timeout=5)


@pytest.mark.ember_only
def test_a_cluster_merges_what_each_node_answers(make_cluster: Any) -> None:
    import ember
    from ember.util.state import list_actors, list_nodes, list_workers, summarize_actors

    cluster = make_cluster({"num_cpus": 1}, {"num_cpus": 1, "resources": {"far": 1}})

    far = ember.remote(Counter).options(resources={"far": 1}).remote()
    far_node = ember.get(far.node.remote())
    nodes = list_nodes(address=cluster.address)
    assert len(nodes) == 2 and {n.node_id for n in nodes} == {n.node_id for n in list_nodes()}
    assert sum(n.is_head_node for n in nodes) == 1
    workers = list_workers(address=cluster.address, filters=[("worker_type", "=", "WORKER")])
    assert far_node in {w.node_id for w in workers}
    assert len({w.node_id for w in workers}) == 2
    (actor,) = list_actors(address=cluster.address, filters=[("class_name", "=", "Counter")])
    assert actor.node_id == far_node and actor.state == "ALIVE"
    assert actor.pid == ember.get(far.pid.remote())  # (its home is the driver's node)
    assert summarize_actors()["cluster"]["summary"]["Counter"]["state_counts"] == {"ALIVE": 1}
    assert len(list_workers(limit=1)) == 1  # (the limit holds over the merged rows)


@pytest.mark.ember_only
def test_objects_say_where_they_are(start_ember: Any) -> None:
    from ember.util.state import list_objects

    ray = start_ember(num_cpus=1, object_store_memory=40 << 20)
    refs = [ray.put(b"x" * (16 << 20)) for _ in range(4)]  # (more than the store holds)
    rows = list_objects(detail=True, filters=[("type", "=", "DRIVER")])
    where = {o.object_id: o.spilled for o in rows}
    assert set(where) >= {r.hex() for r in refs}
    assert any(where[r.hex()] for r in refs) and not all(where[r.hex()] for r in refs)
    assert {o.node_id for o in rows} == {ray.get_runtime_context().get_node_id()}
    spilled = list_objects(detail=True, filters=[("spilled", "=", "true")])
    assert {o.object_id for o in spilled} == {r.hex() for r in refs if where[r.hex()]}


class Keeper:
    def keep(self, refs: list[Any]) -> int:
        import ember

        self.kept = refs[0]
        return len(ember.get(self.kept))

    def pid(self) -> int:
        return os.getpid()


@pytest.mark.ember_only
def test_objects_held_on_another_node_are_listed_there(make_cluster: Any) -> None:
    import ember
    from ember.util.state import list_objects

    make_cluster({"num_cpus": 1}, {"num_cpus": 1, "resources": {"far": 1}})
    ref = ember.put(b"y" * (2 << 20))
    keeper = ember.remote(Keeper).options(resources={"far": 1}).remote()
    assert ember.get(keeper.keep.remote([ref])) == 2 << 20
    far_pid = ember.get(keeper.pid.remote())
    rows = list_objects(filters=[("object_id", "=", ref.hex())], detail=True)
    holders = {(o.pid, o.type) for o in rows}
    assert (os.getpid(), "DRIVER") in holders and (far_pid, "WORKER") in holders
    assert all(o.pid != -1 for o in rows)  # (not the far node itself, as "WORKER -1")
    assert len({o.node_id for o in rows}) == 2  # (a copy in each node's store)


@pytest.mark.ember_only
def test_a_task_lists_the_objects_passed_to_it(ray: Any) -> None:
    from ember.util.state import get_task

    arg = ray.put(3)
    ref = ray.remote(double).remote(arg)
    assert ray.get(ref) == 6
    task = wait_until(
        lambda: (t := get_task(ref)) is not None and t.state == "FINISHED" and t,
        20,
        "the task is listed as finished",
    )
    assert task.arg_object_ids == [arg.hex()]
