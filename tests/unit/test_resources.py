"""Tests for ember._core.resources: fixed-point amounts, shapes, GPU indices, blocked tasks."""

from __future__ import annotations

import pytest

from ember._core.resources import (
    Allocation,
    NodeResources,
    describe,
    from_units,
    shape_dict,
    shape_of,
    to_units,
)

# ----------------------------------------------------------------------------- fixed point


def test_units_round_trip() -> None:
    for amount in (0, 0.0001, 0.1, 0.25, 0.5, 1, 1.5, 2, 3.3333, 64, 1e6):
        assert from_units(to_units(amount)) == pytest.approx(amount)


def test_to_units_rounds_float_noise() -> None:
    assert to_units(0.1) == 1000
    assert to_units(0.1 + 0.2) == 3000  # 0.30000000000000004
    assert to_units(1 - 0.9) == 1000  # 0.09999999999999998


def test_from_units_gives_int_for_whole_amounts() -> None:
    assert from_units(10_000) == 1
    assert isinstance(from_units(10_000), int)
    assert isinstance(from_units(0), int)
    assert from_units(5_000) == 0.5
    assert isinstance(from_units(5_000), float)


def test_ten_tenths_return_exactly_to_start() -> None:
    node = NodeResources({"CPU": 1})
    start = dict(node.available)
    tenth = shape_of({"CPU": 0.1})
    allocs = [node.acquire(tenth) for _ in range(10)]
    assert all(a is not None for a in allocs)
    assert node.available["CPU"] == 0
    assert node.acquire(tenth) is None  # exactly full, not "almost" full
    for a in allocs:
        assert a is not None
        node.release(a)
    assert node.available == start
    assert node.snapshot()[1] == {"CPU": 1.0}


def test_float_sum_of_tenths_would_drift_but_units_do_not() -> None:
    # Guard the premise: with floats, ten 0.1 subtractions do not reach exactly 0.
    value = 1.0
    for _ in range(10):
        value -= 0.1
    assert value != 0.0
    node = NodeResources({"CPU": 1})
    shape = shape_of({"CPU": 0.1})
    for _ in range(10):
        assert node.acquire(shape) is not None
    assert node.available["CPU"] == 0


def test_mixed_fractions_return_to_start() -> None:
    node = NodeResources({"CPU": 4, "memory": 1000.5, "custom": 3})
    start = dict(node.available)
    shapes = [
        shape_of({"CPU": 0.3, "memory": 0.7}),
        shape_of({"CPU": 0.7, "custom": 0.25}),
        shape_of({"CPU": 1.1, "memory": 100.1}),
        shape_of({"custom": 2.75}),
    ]
    allocs = [node.acquire(s) for s in shapes]
    assert all(a is not None for a in allocs)
    assert node.available["custom"] == 0
    for a in reversed(allocs):
        assert a is not None
        node.release(a)
    assert node.available == start


# ----------------------------------------------------------------------------- shapes


def test_shape_of_is_sorted_hashable_and_drops_zeros() -> None:
    shape = shape_of({"GPU": 1, "CPU": 0.5, "memory": 0, "custom": 2})
    assert shape == (("CPU", 5_000), ("GPU", 10_000), ("custom", 20_000))
    assert hash(shape) == hash(shape_of({"custom": 2, "CPU": 0.5, "GPU": 1}))
    assert shape_of({}) == ()
    assert shape_of({"CPU": 0}) == ()


def test_shape_of_is_order_independent() -> None:
    assert shape_of({"a": 1, "b": 2}) == shape_of({"b": 2, "a": 1})


@pytest.mark.parametrize(
    "request_",
    [
        {},
        {"CPU": 1},
        {"CPU": 0.1},
        {"CPU": 2, "GPU": 0.25},
        {"CPU": 1.5, "GPU": 2, "memory": 1024, "accelerator": 0.0001},
    ],
)
def test_shape_dict_round_trip(request_: dict[str, float]) -> None:
    shape = shape_of(request_)
    assert shape_dict(shape) == request_
    assert shape_of(shape_dict(shape)) == shape


def test_shape_dict_uses_ints_for_whole_amounts() -> None:
    d = shape_dict(shape_of({"CPU": 2.0, "GPU": 0.5}))
    assert d == {"CPU": 2, "GPU": 0.5}
    assert isinstance(d["CPU"], int)


def test_describe() -> None:
    assert describe(()) == "no resources"
    assert describe(shape_of({"GPU": 0.5, "CPU": 2})) == "CPU: 2, GPU: 0.5"


# ----------------------------------------------------------------------------- feasible vs fits


def test_zero_amounts_in_total_are_dropped() -> None:
    node = NodeResources({"CPU": 2, "GPU": 0})
    assert node.total == {"CPU": 20_000}
    assert not node.feasible(shape_of({"GPU": 1}))


def test_feasible_depends_on_total_only() -> None:
    node = NodeResources({"CPU": 2})
    two = shape_of({"CPU": 2})
    assert node.feasible(two)
    assert node.acquire(two) is not None
    assert node.feasible(two)  # busy, but could run on an idle node
    assert not node.fits(two)


def test_infeasible_shapes() -> None:
    node = NodeResources({"CPU": 2, "custom": 1})
    assert not node.feasible(shape_of({"CPU": 3}))
    assert not node.feasible(shape_of({"CPU": 2.0001}))
    assert not node.feasible(shape_of({"GPU": 1}))
    assert not node.feasible(shape_of({"other": 0.1}))
    assert not node.fits(shape_of({"CPU": 3}))
    assert node.acquire(shape_of({"CPU": 3})) is None
    assert node.available == node.total  # a failed acquire takes nothing


def test_missing_names_only_what_is_short() -> None:
    node = NodeResources({"CPU": 2, "custom": 1})
    text = node.missing(shape_of({"CPU": 4, "custom": 1, "GPU": 1}))
    assert "CPU (needs 4, node has 2)" in text
    assert "GPU (needs 1, node has 0)" in text
    assert "custom" not in text
    assert node.missing(shape_of({"CPU": 1})) == ""


def test_empty_shape_always_fits() -> None:
    node = NodeResources({})
    assert node.feasible(())
    assert node.fits(())
    alloc = node.acquire(())
    assert alloc is not None
    assert alloc.gpu_ids == []
    node.release(alloc)
    assert node.available == {}


def test_fit_is_all_or_nothing() -> None:
    node = NodeResources({"CPU": 2, "custom": 1})
    assert node.acquire(shape_of({"custom": 1})) is not None
    shape = shape_of({"CPU": 1, "custom": 1})
    assert node.feasible(shape)
    assert not node.fits(shape)
    assert node.acquire(shape) is None
    assert node.available["CPU"] == 20_000  # nothing partially taken


def test_acquire_release_restore_available() -> None:
    node = NodeResources({"CPU": 4, "memory": 100})
    a = node.acquire(shape_of({"CPU": 3, "memory": 40}))
    assert a is not None
    assert node.snapshot()[1] == {"CPU": 1.0, "memory": 60.0}
    assert not node.fits(shape_of({"CPU": 2}))
    node.release(a)
    assert node.available == node.total


# ----------------------------------------------------------------------------- GPU indices


def test_whole_gpus_get_distinct_indices() -> None:
    node = NodeResources({"CPU": 8, "GPU": 4})
    a = node.acquire(shape_of({"GPU": 1}))
    b = node.acquire(shape_of({"GPU": 2}))
    c = node.acquire(shape_of({"GPU": 1}))
    assert a is not None and b is not None and c is not None
    assert len(a.gpu_ids) == 1 and len(b.gpu_ids) == 2 and len(c.gpu_ids) == 1
    all_ids = a.gpu_ids + b.gpu_ids + c.gpu_ids
    assert sorted(all_ids) == [0, 1, 2, 3]
    assert b.gpu_ids == sorted(b.gpu_ids)
    assert node.acquire(shape_of({"GPU": 1})) is None


def test_whole_gpu_request_for_more_than_free_fails() -> None:
    node = NodeResources({"GPU": 2})
    assert node.acquire(shape_of({"GPU": 1})) is not None
    assert not node.fits(shape_of({"GPU": 2}))
    assert node.acquire(shape_of({"GPU": 2})) is None


def test_fractional_gpus_pack_onto_one_index() -> None:
    node = NodeResources({"GPU": 2})
    allocs = [node.acquire(shape_of({"GPU": 0.25})) for _ in range(4)]
    assert all(a is not None for a in allocs)
    ids = {tuple(a.gpu_ids) for a in allocs if a is not None}
    assert len(ids) == 1 and len(next(iter(ids))) == 1  # all four share one device
    fifth = node.acquire(shape_of({"GPU": 0.25}))
    assert fifth is not None
    assert fifth.gpu_ids != allocs[0].gpu_ids  # type: ignore[union-attr]


def test_fractions_of_different_sizes_pack_together() -> None:
    node = NodeResources({"GPU": 2})
    a = node.acquire(shape_of({"GPU": 0.3}))
    b = node.acquire(shape_of({"GPU": 0.5}))
    assert a is not None and b is not None
    assert a.gpu_ids == b.gpu_ids
    c = node.acquire(shape_of({"GPU": 0.5}))  # only 0.2 left on the shared device
    assert c is not None
    assert c.gpu_ids != a.gpu_ids
    d = node.acquire(shape_of({"GPU": 0.2}))  # exactly fills the first device
    assert d is not None
    assert d.gpu_ids == a.gpu_ids


def test_whole_gpu_avoids_partly_used_device() -> None:
    node = NodeResources({"GPU": 2})
    frac = node.acquire(shape_of({"GPU": 0.5}))
    assert frac is not None
    whole = node.acquire(shape_of({"GPU": 1}))
    assert whole is not None
    assert whole.gpu_ids != frac.gpu_ids
    # 0.5 GPU is still available in total, but no device is whole.
    assert node.available["GPU"] == 5_000
    assert not node.fits(shape_of({"GPU": 1}))


def test_whole_gpu_does_not_fit_when_free_amount_is_split_across_devices() -> None:
    node = NodeResources({"GPU": 2})
    a = node.acquire(shape_of({"GPU": 0.5}))
    b = node.acquire(shape_of({"GPU": 0.75}))  # does not fit beside a: a second device
    assert a is not None and b is not None
    assert a.gpu_ids != b.gpu_ids
    assert node.available["GPU"] == to_units(0.75)
    assert node.feasible(shape_of({"GPU": 1}))
    assert not node.fits(shape_of({"GPU": 0.6}))  # 0.5 and 0.25 left on the two devices
    assert node.fits(shape_of({"GPU": 0.5}))


def test_release_frees_gpu_indices() -> None:
    node = NodeResources({"GPU": 2})
    a = node.acquire(shape_of({"GPU": 2}))
    assert a is not None and a.gpu_ids == [0, 1]
    assert node.acquire(shape_of({"GPU": 0.1})) is None
    node.release(a)
    assert a.gpu_units == {}
    b = node.acquire(shape_of({"GPU": 2}))
    assert b is not None and b.gpu_ids == [0, 1]


def test_release_of_fractions_makes_device_whole_again() -> None:
    node = NodeResources({"GPU": 1})
    parts = [node.acquire(shape_of({"GPU": 0.5})) for _ in range(2)]
    assert all(p is not None for p in parts)
    assert node.acquire(shape_of({"GPU": 1})) is None
    node.release(parts[0])  # type: ignore[arg-type]
    assert node.acquire(shape_of({"GPU": 1})) is None  # half a device is still in use
    node.release(parts[1])  # type: ignore[arg-type]
    whole = node.acquire(shape_of({"GPU": 1}))
    assert whole is not None and whole.gpu_ids == [0]


def test_non_gpu_allocation_has_no_gpu_ids() -> None:
    node = NodeResources({"CPU": 1, "GPU": 1})
    a = node.acquire(shape_of({"CPU": 1}))
    assert a is not None
    assert a.gpu_ids == [] and a.gpu_units == {}


# ----------------------------------------------------------------------------- blocked tasks


def test_release_cpus_lends_cpus_back() -> None:
    node = NodeResources({"CPU": 1, "custom": 1})
    a = node.acquire(shape_of({"CPU": 1, "custom": 1}))
    assert a is not None
    assert not node.fits(shape_of({"CPU": 1}))
    node.release_cpus(a)
    assert a.cpus_released
    assert node.available["CPU"] == 10_000
    assert node.available["custom"] == 0  # only CPUs are lent
    node.release_cpus(a)  # idempotent
    assert node.available["CPU"] == 10_000


def test_reacquire_cpus_may_oversubscribe() -> None:
    node = NodeResources({"CPU": 1})
    a = node.acquire(shape_of({"CPU": 1}))
    assert a is not None
    node.release_cpus(a)
    b = node.acquire(shape_of({"CPU": 1}))  # runs while a is blocked
    assert b is not None
    node.reacquire_cpus(a)  # a resumes: allowed even though b holds the CPU
    assert not a.cpus_released
    assert node.available["CPU"] == -10_000
    assert node.snapshot()[1]["CPU"] == 0.0  # never reported below zero
    assert not node.fits(shape_of({"CPU": 0.1}))
    node.reacquire_cpus(a)  # idempotent
    assert node.available["CPU"] == -10_000
    node.release(b)
    node.release(a)
    assert node.available == node.total


def test_release_of_blocked_allocation_does_not_return_cpus_twice() -> None:
    node = NodeResources({"CPU": 2, "custom": 1})
    a = node.acquire(shape_of({"CPU": 2, "custom": 1}))
    assert a is not None
    node.release_cpus(a)
    node.release(a)
    assert node.available == node.total


def test_release_cpus_with_fractional_cpus() -> None:
    node = NodeResources({"CPU": 1})
    a = node.acquire(shape_of({"CPU": 0.3}))
    assert a is not None
    node.release_cpus(a)
    assert node.available["CPU"] == 10_000
    node.reacquire_cpus(a)
    assert node.available["CPU"] == 7_000
    node.release(a)
    assert node.available["CPU"] == 10_000


def test_blocking_a_cpu_less_task_on_a_cpu_less_node_leaves_no_trace() -> None:
    node = NodeResources({"GPU": 1})
    a = node.acquire(shape_of({"GPU": 1}))
    assert a is not None
    node.release_cpus(a)
    node.reacquire_cpus(a)
    node.release(a)
    assert node.available == node.total
    assert set(node.snapshot()[1]) == {"GPU"}


def test_allocation_defaults() -> None:
    alloc = Allocation(shape_of({"CPU": 1}))
    assert alloc.gpu_ids == [] and alloc.gpu_units == {} and not alloc.cpus_released


# ----------------------------------------------------------------------------- snapshot


def test_snapshot_returns_floats() -> None:
    node = NodeResources({"CPU": 4, "GPU": 1, "memory": 2.5})
    assert node.acquire(shape_of({"CPU": 1.5, "GPU": 1})) is not None
    total, avail = node.snapshot()
    assert total == {"CPU": 4.0, "GPU": 1.0, "memory": 2.5}
    assert avail == {"CPU": 2.5, "GPU": 0.0, "memory": 2.5}
    for value in (*total.values(), *avail.values()):
        assert type(value) is float


def test_snapshot_is_a_copy() -> None:
    node = NodeResources({"CPU": 1})
    total, avail = node.snapshot()
    total["CPU"] = 99.0
    avail["CPU"] = 99.0
    assert node.snapshot() == ({"CPU": 1.0}, {"CPU": 1.0})
