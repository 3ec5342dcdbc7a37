"""Objects and ids as Ray has them: ``ObjectRef(binary)`` and hex round trips for out-of-band
serialization, the id classes, ``ember.cloudpickle``, the context ``init()`` returns, and the
fields of ``nodes()``."""

from __future__ import annotations

import gc
import pickle
import warnings
from typing import Any

import pytest

import ember
from tests._helpers import wait_until

ID_CLASSES = ["ActorID", "NodeID", "JobID", "TaskID", "WorkerID", "PlacementGroupID"]


@ember.remote
def double(x: int) -> int:
    return 2 * x


@ember.remote
def value_of(pickled: bytes) -> int:
    """Gets a value through a ref sent out of band, pickled with ``ember.cloudpickle``."""
    return int(ember.get(ember.cloudpickle.loads(pickled)))


@ember.remote
def value_from_hex(hex_id: str) -> Any:
    """Gets a value through a ref rebuilt from its hex id, as Ray's docs show it."""
    try:
        return ember.get(ember.ObjectRef(bytes.fromhex(hex_id)), timeout=30)
    except ember.exceptions.RayError as e:
        return e


@ember.remote
def task_and_job_ids() -> tuple[Any, Any, str, str]:
    ctx = ember.get_runtime_context()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return ctx.task_id, ctx.job_id, ctx.get_task_id(), ctx.get_job_id()


@ember.remote
class Named:
    def actor_id(self) -> tuple[Any, str]:
        ctx = ember.get_runtime_context()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return ctx.actor_id, ctx.get_actor_id()


def test_object_ref_from_its_binary_gets_the_value(ray: Any) -> None:
    ref = ray.put(41)
    again = ray.ObjectRef(ref.binary())
    assert again == ref and hash(again) == hash(ref)
    assert again.hex() == ref.hex() and again.binary() == ref.binary()
    assert ray.get(again) == 41
    assert ray.get(ray.ObjectRef.from_binary(bytes.fromhex(ref.hex()))) == 41
    # Sent out of band as Ray documents: pickled by ray.cloudpickle, which keeps the owner.
    assert ray.get(value_of.remote(ray.cloudpickle.dumps(ref))) == 41
    done = double.remote(4)
    assert ray.get(done) == 8
    assert ray.get(ray.ObjectRef(done.binary())) == 8


@pytest.mark.ember_only  # Ray's task waits for ever: it cannot know the owner to ask
def test_object_ref_from_hex_in_a_task_reads_what_the_node_holds(ray: Any) -> None:
    big = ray.put(b"x" * 300_000)  # stored: on the node, where the task reads it
    assert ray.get(value_from_hex.remote(big.hex()), timeout=30) == b"x" * 300_000


@pytest.mark.ember_only  # Ray's get waits for ever on a ref whose owner it cannot know
def test_object_ref_of_unknown_owner_fails_clearly(ray: Any) -> None:
    small = ray.put(1)  # kept by the driver alone: the task's node does not have it
    error = ray.get(value_from_hex.remote(small.hex()), timeout=30)
    assert isinstance(error, ray.exceptions.ObjectLostError), error
    assert "owner is unknown" in str(error)
    with pytest.raises(ray.exceptions.ObjectLostError, match="owner is unknown"):
        ray.get(ray.ObjectRef(bytes(ray.ObjectRef.size())), timeout=30)


def test_object_ref_built_before_init_or_wrongly_leaves_no_noise(
    start_ember: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    early = ember.ObjectRef(bytes(ember.ObjectRef.size()))
    with pytest.raises(TypeError):
        ember.ObjectRef()  # type: ignore[call-arg]
    ray = start_ember(num_cpus=1)
    ref = ray.put(5)
    assert ray.get(ray.ObjectRef(ref.binary()), timeout=30) == 5
    del early, ref
    gc.collect()
    assert "Exception ignored" not in capfd.readouterr().err


@pytest.mark.ember_only  # Ray 2.60's ObjectRef.from_hex raises NotImplementedError
def test_object_ref_from_hex(ray: Any) -> None:
    ref = ray.put("x")
    assert ray.ObjectRef.from_hex(ref.hex()) == ref
    assert ray.get(ray.ObjectRef.from_hex(ref.hex())) == "x"
    with pytest.raises(ValueError, match="hex string"):
        ray.ObjectRef.from_hex("not hex")


def test_object_ref_ids_and_nil(ray: Any) -> None:
    ref = double.remote(1)
    assert isinstance(ref.task_id(), ray.TaskID)
    assert isinstance(ref.job_id(), ray.JobID)
    assert ref.job_id().hex() == ray.get_runtime_context().get_job_id()
    assert isinstance(ref.owner_address(), bytes) and ref.owner_address()
    assert not ref.is_nil()
    nil = ray.ObjectRef.nil()
    assert nil.is_nil() and nil == ray.ObjectRef.nil()
    assert len(nil.binary()) == ray.ObjectRef.size() == len(ref.binary())
    assert ray.get(ref) == 2


def test_object_ref_from_bad_binary_is_refused(ray: Any) -> None:
    with pytest.raises(ValueError, match="length"):
        ray.ObjectRef(b"abc")
    with pytest.raises(TypeError, match="bytes"):
        ray.ObjectRef("abc")


@pytest.mark.parametrize("name", ID_CLASSES)
def test_id_classes_round_trip(name: str) -> None:
    cls = getattr(ember, name)
    nil = cls.nil()
    assert nil.is_nil() and len(nil.binary()) == cls.size()
    assert nil.binary() == b"\xff" * cls.size()
    some = cls(bytes(range(cls.size())))
    assert not some.is_nil()
    assert cls.from_hex(some.hex()) == some == cls.from_binary(some.binary())
    assert hash(cls.from_hex(some.hex())) == hash(some)
    assert repr(some) == f"{name}({some.hex()})"
    assert pickle.loads(pickle.dumps(some)) == some
    assert some != cls.nil()
    with pytest.raises(ValueError, match="length"):
        cls(b"\x01")
    with pytest.raises(TypeError):
        cls(some.hex())


def test_job_id_from_int() -> None:
    job = ember.JobID.from_int(3)
    assert job.int() == 3 and job.hex() == "03000000"


def test_runtime_context_properties_give_id_objects(ray: Any) -> None:
    task, job, task_hex, job_hex = ray.get(task_and_job_ids.remote())
    assert isinstance(task, ray.TaskID) and task.hex() == task_hex
    assert isinstance(job, ray.JobID) and job.hex() == job_hex
    actor_id, actor_hex = ray.get(Named.remote().actor_id.remote())
    assert isinstance(actor_id, ray.ActorID) and actor_id.hex() == actor_hex
    ctx = ray.get_runtime_context()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert ctx.node_id == ray.NodeID.from_hex(ctx.get_node_id())
        assert ctx.current_placement_group_id.is_nil()
    assert isinstance(ctx.get_node_id(), str) and isinstance(ctx.get_job_id(), str)


def test_placement_group_id_is_the_public_class(ray: Any) -> None:
    from ember.util.placement_group import placement_group, remove_placement_group

    pg = placement_group([{"CPU": 1}])
    assert ray.get(pg.ready(), timeout=60) is not None
    assert isinstance(pg.id, ray.PlacementGroupID) and not pg.id.is_nil()
    assert ray.PlacementGroupID.from_hex(pg.id.hex()) == pg.id
    remove_placement_group(pg)


def test_cloudpickle_is_the_module() -> None:
    import cloudpickle

    assert ember.cloudpickle.dumps is not None
    assert ember.cloudpickle.loads(ember.cloudpickle.dumps(lambda x: x + 1))(1) == 2
    assert ember.cloudpickle.__version__ == cloudpickle.__version__ or ember.__name__ == "ray"


def test_init_returns_a_context(start_ember: Any) -> None:
    ctx = ember.init(num_cpus=1)
    info = ctx.address_info
    for key in (
        "node_ip_address",
        "redis_address",
        "object_store_address",
        "raylet_socket_name",
        "webui_url",
        "session_dir",
        "metrics_export_port",
        "gcs_address",
        "address",
        "dashboard_agent_listen_port",
        "node_id",
    ):
        assert key in info, key
    assert info["node_id"] == ember.get_runtime_context().get_node_id()
    assert info["address"] and info["address"] == info["gcs_address"]
    assert ctx.python_version and ctx.ray_version == ember.__version__
    with pytest.warns(DeprecationWarning):
        assert ctx["node_id"] == info["node_id"]
    assert set(ctx.address_info) == set(iter(ctx.address_info))


@pytest.mark.ember_only  # (Ray's dashboard needs ray[default])
def test_context_has_the_dashboards_url(start_ember: Any) -> None:
    ctx = ember.init(num_cpus=1)
    assert ctx.dashboard_url and ctx.address_info["webui_url"] == ctx.dashboard_url


def test_init_as_a_context_manager_shuts_down(start_ember: Any) -> None:
    with ember.init(num_cpus=1) as ctx:
        assert ember.is_initialized()
        assert ember.get(double.remote(2)) == 4
        assert ctx.address_info["node_id"]
    assert not ember.is_initialized()


def test_nodes_fields(ray: Any) -> None:
    (node,) = ray.nodes()
    for key in (
        "NodeID",
        "Alive",
        "NodeManagerAddress",
        "NodeManagerHostname",
        "NodeManagerPort",
        "ObjectManagerPort",
        "ObjectStoreSocketName",
        "RayletSocketName",
        "MetricsExportPort",
        "MetricsAgentPort",
        "DashboardAgentListenPort",
        "NodeName",
        "RuntimeEnvAgentPort",
        "DeathReason",
        "DeathReasonMessage",
        "alive",
        "Resources",
        "Labels",
    ):
        assert key in node, key
    assert node["Alive"] and node["alive"]
    assert node["DeathReason"] == 0 and node["DeathReasonMessage"] == ""
    assert node["NodeID"] == ray.get_runtime_context().get_node_id()
    assert isinstance(node["NodeManagerPort"], int) and isinstance(node["ObjectManagerPort"], int)
    assert isinstance(node["MetricsExportPort"], int)


@pytest.mark.ember_only  # (ember.testing.Cluster)
def test_nodes_of_a_cluster_have_ports_and_death_reasons(make_cluster: Any) -> None:
    cluster = make_cluster({"num_cpus": 1}, {"num_cpus": 1})
    for node in ember.nodes():
        assert node["NodeManagerPort"] > 0 and node["ObjectManagerPort"] > 0
    victim = cluster.nodes[1]
    cluster.remove_node(victim)

    def dead() -> dict[str, Any] | None:
        return next(
            (n for n in ember.nodes() if n["NodeID"] == victim.node_id and not n["Alive"]), None
        )

    gone = wait_until(dead, 30, "the removed node listed as dead")
    assert gone["DeathReason"] == 2 and gone["DeathReasonMessage"]
