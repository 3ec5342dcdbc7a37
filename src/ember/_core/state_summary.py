"""The state API's summaries (``summarize_tasks``, ``summarize_actors``,
``summarize_objects``), from rows with Ray's field names, in the shapes Ray's return.

Tasks are many (100,000 on a long run), so each node counts its own by function, type and
state (``count_tasks``: a row per group, with a ``count``), the control store adds the
nodes' counts up (``merge_counts``), and only then are they shaped (``task_summaries``):
what crosses the network is a row per group, not per task. Actors and objects are few
enough to summarize from their rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Row = dict[str, Any]

# The kinds of rows that are counts, summed over nodes rather than concatenated.
COUNT_KINDS = frozenset({"task_summary"})
_TASK_GROUP = ("func_or_class_name", "type", "state")


def count_tasks(tasks: Iterable[Row]) -> list[Row]:
    """A row per (function or class name, task type, state) with the number of such tasks."""
    return count_groups((t.get("func_or_class_name"), t.get("type"), t.get("state")) for t in tasks)


def count_groups(groups: Iterable[tuple[Any, Any, Any]]) -> list[Row]:
    """``count_tasks`` of tasks given as their (function or class name, type, state), as a
    table that keeps its tasks packed gives them without a row each."""
    counts: dict[tuple[Any, ...], int] = {}
    for key in groups:
        counts[key] = counts.get(key, 0) + 1
    return [{**dict(zip(_TASK_GROUP, key, strict=True)), "count": n} for key, n in counts.items()]


def merge_counts(rows: Iterable[Row]) -> list[Row]:
    """Count rows of several sources as one: rows alike but for ``count`` are added up."""
    merged: dict[tuple[Any, ...], Row] = {}
    for row in rows:
        key = tuple(sorted((k, v) for k, v in row.items() if k != "count"))
        if key in merged:
            merged[key]["count"] += row["count"]
        else:
            merged[key] = dict(row)
    return list(merged.values())


def task_summaries(counts: Iterable[Row]) -> Row:
    """Ray's ``TaskSummaries`` (as a dict) from ``count_tasks`` rows: per function or class
    name its type and a count per state, and the totals of plain tasks, actor calls and
    actor creations."""
    summary: dict[str, Row] = {}
    totals = {"NORMAL_TASK": 0, "ACTOR_TASK": 0, "ACTOR_CREATION_TASK": 0}
    for row in counts:
        name, kind, state, n = row["func_or_class_name"], row["type"], row["state"], row["count"]
        entry = summary.setdefault(
            name, {"func_or_class_name": name, "type": kind, "state_counts": {}}
        )
        entry["state_counts"][state] = entry["state_counts"].get(state, 0) + n
        if kind in totals:
            totals[kind] += n
    return {
        "summary": summary,
        "total_tasks": totals["NORMAL_TASK"],
        "total_actor_tasks": totals["ACTOR_TASK"],
        "total_actor_scheduled": totals["ACTOR_CREATION_TASK"],
        "summary_by": "func_name",
    }


def actor_summaries(actors: Iterable[Row]) -> Row:
    """Ray's ``ActorSummaries`` (as a dict): per class a count per state."""
    summary: dict[str, Row] = {}
    total = 0
    for a in actors:
        entry = summary.setdefault(
            a["class_name"], {"class_name": a["class_name"], "state_counts": {}}
        )
        entry["state_counts"][a["state"]] = entry["state_counts"].get(a["state"], 0) + 1
        total += 1
    return {"summary": summary, "total_actors": total, "summary_by": "class"}


def object_summaries(objects: Iterable[Row]) -> Row:
    """Ray's ``ObjectSummaries`` (as a dict): per call site (``"disabled"`` where it is not
    recorded) the references, their sizes, the task states and reference types, and how many
    processes and nodes hold them."""
    summary: dict[str, Row] = {}
    holders: dict[str, tuple[set[Any], set[Any]]] = {}
    total, total_mb, callsite_enabled = 0, 0.0, True
    for o in objects:
        site = o["call_site"]
        callsite_enabled = callsite_enabled and site != "disabled"
        entry = summary.get(site)
        if entry is None:
            entry = summary[site] = {
                "total_objects": 0,
                "total_size_mb": 0.0,
                "total_num_workers": 0,
                "total_num_nodes": 0,
                "task_state_counts": {},
                "task_attempt_number_counts": {},
                "ref_type_counts": {},
            }
            holders[site] = (set(), set())
        for counts, key in (
            (entry["task_state_counts"], o["task_status"]),
            (entry["task_attempt_number_counts"], str(o.get("attempt_number", 0))),
            (entry["ref_type_counts"], o["reference_type"]),
        ):
            counts[key] = counts.get(key, 0) + 1
        entry["total_objects"] += 1
        total += 1
        if o["object_size"] is not None and o["object_size"] >= 0:
            mb = o["object_size"] / 2**20
            entry["total_size_mb"] += mb
            total_mb += mb
        pids, ips = holders[site]
        pids.add(o["pid"])
        ips.add(o["ip"])
    for site, (pids, ips) in holders.items():
        summary[site]["total_num_workers"] = len(pids)
        summary[site]["total_num_nodes"] = len(ips)
    return {
        "summary": summary,
        "total_objects": total,
        "total_size_mb": total_mb,
        "callsite_enabled": callsite_enabled,
        "summary_by": "callsite",
    }
