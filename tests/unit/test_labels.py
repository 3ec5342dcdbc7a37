"""Node labels and label selectors (ember._core.labels), and how placement and the lease
scheduler honour them, with plain values: no processes, no sockets."""

from __future__ import annotations

from typing import Any

import pytest

from ember._core.labels import (
    check_node_labels,
    describe,
    matches,
    node_labels,
    parse_selector,
)
from ember._core.placement import HERE, Placement, strategy_on_wire
from ember._core.resources import NodeResources, shape_of
from ember._core.scheduler import Grant, LeaseScheduler, Spill, WarnInfeasible

LOCAL, B, C = b"L" * 16, b"B" * 16, b"C" * 16
CPU1 = shape_of({"CPU": 1})


@pytest.mark.parametrize(
    ("expr", "labels", "expected"),
    [
        ("a", {"zone": "a"}, True),
        ("a", {"zone": "b"}, False),
        ("a", {}, False),
        ("!a", {"zone": "b"}, True),
        ("!a", {"zone": "a"}, False),
        ("!a", {}, True),  # as Kubernetes' NotIn: a node without the label is not "a"
        ("in(a,b)", {"zone": "b"}, True),
        ("in(a, b)", {"zone": "c"}, False),
        ("in(a,b)", {}, False),
        ("!in(a,b)", {"zone": "c"}, True),
        ("!in(a,b)", {"zone": "a"}, False),
        ("!in(a,b)", {}, True),
    ],
)
def test_selector_forms_match_as_ray_documents(
    expr: str, labels: dict[str, str], expected: bool
) -> None:
    assert matches(parse_selector({"zone": expr}), labels) is expected


def test_every_condition_must_hold() -> None:
    sel = parse_selector({"zone": "a", "disk": "in(ssd,nvme)"})
    assert matches(sel, {"zone": "a", "disk": "nvme"})
    assert not matches(sel, {"zone": "a", "disk": "hdd"})
    assert matches((), {})  # no selector: any node


@pytest.mark.parametrize("expr", ["", "in()", "!!a", "-a", "a-", "in(a,", "in(a b)", "x" * 64])
def test_bad_selectors_are_refused_naming_the_key(expr: str) -> None:
    with pytest.raises(ValueError, match="zone"):
        parse_selector({"zone": expr})


def test_selector_keys_follow_the_label_syntax() -> None:
    assert parse_selector({"example.com/zone": "a"})
    with pytest.raises(ValueError, match="invalid"):
        parse_selector({"bad key": "a"})


def test_selector_round_trips_through_describe() -> None:
    given = {"zone": "!in(a,b)", "disk": "ssd"}
    assert parse_selector(eval(describe(parse_selector(given)))) == parse_selector(given)


def test_node_labels_are_checked() -> None:
    assert check_node_labels({"zone": "a", "tier": ""}) == {"zone": "a", "tier": ""}
    with pytest.raises(ValueError, match="string"):
        check_node_labels({"zone": 1})
    with pytest.raises(ValueError, match="value"):
        check_node_labels({"zone": "not ok"})
    with pytest.raises(ValueError, match="dict"):
        check_node_labels(["zone"])


def test_a_node_has_the_labels_ray_sets_beside_its_own() -> None:
    resources = {"CPU": 1, "accelerator_type:A100": 1}
    assert node_labels({"zone": "a"}, b"\x01\x02", resources) == {
        "zone": "a",
        "ray.io/node-id": "0102",
        "ray.io/accelerator-type": "A100",
    }
    assert node_labels({}, b"\x01", {"CPU": 1}) == {"ray.io/node-id": "01"}


def node(node_id: bytes, labels: dict[str, str], cpus: float = 2) -> dict[str, Any]:
    total = {"CPU": cpus}
    return {"node_id": node_id, "total": total, "available": total, "alive": True, "labels": labels}


def on_wire(selector: dict[str, str], strategy: Any = None) -> Any:
    return strategy_on_wire(strategy, parse_selector(selector))


def placement(here: dict[str, str], *nodes: dict[str, Any]) -> Placement:
    p = Placement(LOCAL, here)
    p.update([node(LOCAL, here), *nodes])
    return p


def test_placement_sends_work_only_to_matching_nodes() -> None:
    p = placement({"zone": "a"}, node(B, {"zone": "b"}), node(C, {"zone": "c"}))
    local = NodeResources({"CPU": 2})
    assert p.choose(CPU1, on_wire({"zone": "a"}), local) is HERE
    assert p.choose(CPU1, on_wire({"zone": "c"}), local) == C
    assert p.choose(CPU1, on_wire({"zone": "!a"}), local) in (B, C)
    assert p.choose(CPU1, on_wire({"zone": "in(b)"}, "SPREAD"), local) == B
    # Nowhere matches: it stays here (and waits, with a warning from the scheduler).
    assert p.choose(CPU1, on_wire({"zone": "d"}), local) is HERE


def test_scheduler_never_grants_here_what_this_node_s_labels_do_not_match() -> None:
    s = LeaseScheduler(NodeResources({"CPU": 2}), labels={"zone": "a"})
    s.worker_started(b"w1")
    actions = s.request("caller", 1, CPU1, "f", strategy=on_wire({"zone": "b"}))
    assert [type(a) for a in actions] == [WarnInfeasible]
    assert "label_selector" in actions[0].message  # type: ignore[union-attr]
    assert s.pending() == [("f", False)]
    granted = s.request("caller", 2, CPU1, "g", strategy=on_wire({"zone": "in(a,b)"}))
    assert [type(a) for a in granted] == [Grant]


def test_queued_work_spills_to_a_matching_node_that_joins() -> None:
    here = {"zone": "a"}
    s = LeaseScheduler(NodeResources({"CPU": 2}), placement=placement(here), labels=here)
    s.worker_started(b"w1")
    s.request("caller", 1, CPU1, "f", strategy=on_wire({"zone": "b"}))
    view = [node(LOCAL, here), node(C, {"zone": "c"})]
    assert s.view_changed(view) == []
    assert s.view_changed([*view, node(B, {"zone": "b"})]) == [Spill("caller", 1, B)]
