"""``ember list``, ``ember get``, ``ember summary`` and ``ember memory``: the state API
(``ember.util.state``) on the command line, as Ray's ``ray list`` and friends.

Without ``--address`` they look at the cluster (or ``init()`` session) running on this
machine; ``--address HOST:PORT`` names a cluster's control store.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

from ember.util import state
from ember.util.state.common import RECORD_OF_KIND, Humanify, ObjectState

Handler = Callable[[argparse.Namespace], int]

# CLI names (Ray's) -> kinds of rows.
_KINDS = {
    "tasks": "tasks",
    "actors": "actors",
    "objects": "objects",
    "nodes": "nodes",
    "workers": "workers",
    "jobs": "jobs",
    "placement-groups": "placement_groups",
}
_GETTABLE = ("tasks", "actors", "nodes", "workers", "placement-groups", "objects")
_LISTERS: dict[str, Callable[..., list[Any]]] = {
    "tasks": state.list_tasks,
    "actors": state.list_actors,
    "objects": state.list_objects,
    "nodes": state.list_nodes,
    "workers": state.list_workers,
    "jobs": state.list_jobs,
    "placement_groups": state.list_placement_groups,
}
_GETTERS: dict[str, Callable[..., Any]] = {
    "tasks": state.get_task,
    "actors": state.get_actor,
    "nodes": state.get_node,
    "workers": state.get_worker,
    "placement_groups": state.get_placement_group,
    "objects": state.get_objects,
}
_SUMMARIES: dict[str, Callable[..., dict[str, Any]]] = {
    "tasks": state.summarize_tasks,
    "actors": state.summarize_actors,
    "objects": state.summarize_objects,
}
# Predicates a --filter may use, longest first so that "!=" is not read as "=".
_PREDICATES = ("!=", ">=", "<=", "=", ">", "<")


def add_commands(commands: Any) -> dict[str, Handler]:
    """Add the state commands to the ``ember`` parser; their handlers by name."""
    lister = commands.add_parser(
        "list",
        help="list tasks, actors, objects, nodes, workers, jobs or placement groups",
        description="List what runs in the cluster, as records with Ray's fields. Filters "
        "and the limit are applied where the records are.",
    )
    lister.add_argument("kind", choices=sorted(_KINDS), help="what to list")
    lister.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keep only records where KEY=VALUE (or KEY!=VALUE; KEY<VALUE, KEY<=VALUE, "
        "KEY>VALUE, KEY>=VALUE compare numbers); repeat to combine, e.g. "
        '--filter "state=RUNNING" (text compares without regard to case)',
    )
    lister.add_argument(
        "--limit", type=int, default=100, help="at most this many records (default %(default)s)"
    )
    lister.add_argument("--detail", action="store_true", help="show every field")
    _add_format(lister, "table")
    _add_address(lister)

    getter = commands.add_parser(
        "get",
        help="show one task, actor, node, worker, placement group or object by id",
        description="Show every field of one record, found by its id (hex).",
    )
    getter.add_argument("kind", choices=sorted(_GETTABLE), help="what to show")
    getter.add_argument("id", help="its id (hex)")
    _add_format(getter, "yaml")
    _add_address(getter)

    summary = commands.add_parser(
        "summary",
        help="count tasks (by function), actors (by class) or objects (by call site)",
        description="Count tasks by function name and state, actors by class and state, or "
        "object references by call site and reference type.",
    )
    summary.add_argument("kind", choices=sorted(_SUMMARIES), help="what to count")
    _add_format(summary, "table")
    _add_address(summary)

    memory = commands.add_parser(
        "memory",
        help="show the objects in the store: sizes, who holds each reference and why",
        description="Show the objects the nodes know of: their sizes, where they are (in "
        "shared memory or spilled to disk), who holds each reference and why, with totals.",
    )
    memory.add_argument(
        "--limit", type=int, default=1000, help="at most this many references (default %(default)s)"
    )
    _add_address(memory)
    return {
        name: _warnings_to_stderr(handler)
        for name, handler in (
            ("list", _list),
            ("get", _get),
            ("summary", _summary),
            ("memory", _memory),
        )
    }


def _warnings_to_stderr(handler: Handler) -> Handler:
    """What the state API warns of (a node that did not answer, rows left out by the limit)
    as plain lines on stderr, not Python's warning format."""

    def run(args: argparse.Namespace) -> int:
        if args.token:  # (where the state API looks for a token: ``admin.state_target``)
            os.environ["EMBER_TOKEN"] = args.token
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            code = handler(args)
        for w in said:
            print(f"ember {args.command}: warning: {w.message}", file=sys.stderr)
        return code

    return run


def _add_format(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--format",
        choices=("table", "json", "yaml"),
        default=default,
        help="output format (default %(default)s)",
    )


def _add_address(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address",
        metavar="HOST:PORT",
        help="the cluster's control store (default: the cluster or init() session on this "
        "machine, or $EMBER_ADDRESS)",
    )
    parser.add_argument(
        "--token", help="the cluster's token (default: $EMBER_TOKEN, or the head's on this host)"
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait (default %(default)s)"
    )


def parse_filter(text: str) -> tuple[str, str, str]:
    """``"state=RUNNING"`` -> ``("state", "=", "RUNNING")``."""
    for predicate in _PREDICATES:
        key, found, value = text.partition(predicate)
        if found and key.strip():
            return key.strip(), predicate, value.strip()
    raise ValueError(
        f'--filter {text!r} is not KEY=VALUE or KEY!=VALUE: use e.g. --filter "state=RUNNING"'
    )


def _list(args: argparse.Namespace) -> int:
    kind = _KINDS[args.kind]
    records = _LISTERS[kind](
        address=args.address,
        filters=[parse_filter(f) for f in args.filter],
        limit=args.limit,
        timeout=args.timeout,
        detail=args.detail,
        raise_on_missing_output=False,
        _explain=True,
    )
    rows = [r.asdict() for r in records]
    if args.format != "table":
        _dump(rows, args.format)
        return 0
    record = RECORD_OF_KIND[kind]
    columns = record.list_columns(args.detail)
    print(f"======== List: {time.strftime('%Y-%m-%d %H:%M:%S')} ========")
    print(f"Total: {len(rows)}\n")
    print(_table(columns, [record.humanify(dict(r)) for r in rows]))
    return 0


def _get(args: argparse.Namespace) -> int:
    kind = _KINDS[args.kind]
    found = _GETTERS[kind](args.id, address=args.address, timeout=args.timeout)
    if found is None or found == []:
        print(
            f"ember get: no {args.kind[:-1].replace('-', ' ')} with id {args.id}", file=sys.stderr
        )
        return 1
    records = found if isinstance(found, list) else [found]
    rows = [r.asdict() for r in records]
    if args.format == "table":
        record = RECORD_OF_KIND[kind]
        print(_table(record.list_columns(), [record.humanify(dict(r)) for r in rows]))
    else:
        _dump(rows if len(rows) > 1 else rows[0], args.format)
    return 0


def _summary(args: argparse.Namespace) -> int:
    result = _SUMMARIES[args.kind](address=args.address, timeout=args.timeout)["cluster"]
    if args.format != "table":
        _dump(result, args.format)
        return 0
    print(
        f"======== {args.kind.capitalize()} Summary: {time.strftime('%Y-%m-%d %H:%M:%S')} ========"
    )
    for key, value in sorted(result.items()):
        if key not in ("summary", "summary_by"):
            print(f"{key}: {value}")
    print(f"\nTable (group by {result['summary_by']}):")
    rows = []
    for name, entry in sorted(result["summary"].items()):
        row = {"key": name}
        for field, value in entry.items():
            row[field] = _counts(value) if isinstance(value, dict) else value
        rows.append(row)
    columns = list(rows[0]) if rows else ["key"]
    print(_table(columns, rows))
    return 0


def _memory(args: argparse.Namespace) -> int:
    refs = state.list_objects(
        address=args.address,
        limit=args.limit,
        timeout=args.timeout,
        detail=True,
        raise_on_missing_output=False,
        _explain=True,
    )
    nodes = state.list_nodes(address=args.address, timeout=args.timeout, limit=10_000)
    sizes: dict[str, tuple[int, bool]] = {}
    for r in refs:
        if r.reference_type != "ACTOR_HANDLE":
            sizes[r.object_id] = (max(r.object_size, 0), bool(r.spilled))
    capacity = sum(
        int(n.resources_total.get("object_store_memory", 0)) for n in nodes if n.state == "ALIVE"
    )
    in_memory = sum(size for size, spilled in sizes.values() if not spilled)
    spilled = sum(size for size, spilled in sizes.values() if spilled)
    print(f"======== Object references: {time.strftime('%Y-%m-%d %H:%M:%S')} ========")
    columns = ["object_id", "object_size", "reference_type", "type", "pid", "ip", "where"]
    rows = []
    for r in sorted(refs, key=lambda r: (-(r.object_size or 0), r.object_id)):
        row = ObjectState.humanify(r.asdict())
        if r.reference_type == "ACTOR_HANDLE":
            row.update(object_size="", where="")  # (an actor, not an object in the store)
        else:
            row["where"] = "spilled" if r.spilled else "memory"
        rows.append(row)
    print(_table(columns, rows))
    of = f" (of the {len(refs)} listed: raise --limit for all)" if len(refs) >= args.limit else ""
    print(
        f"\n{len(sizes)} object(s), {len(refs)} reference(s){of}; in shared memory "
        f"{Humanify.memory(in_memory)} of {Humanify.memory(capacity)}; spilled to disk "
        f"{Humanify.memory(spilled)}"
    )
    return 0


def _counts(counts: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))


def _table(columns: list[str], rows: list[dict[str, Any]]) -> str:
    """A plain table: a header of the column names in capitals, a line per row."""
    cells = [[c.upper() for c in columns]]
    cells += [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in cells
    )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def _dump(value: Any, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(value, indent=2, default=str))
        return
    import yaml

    print(yaml.safe_dump(value, sort_keys=False, default_flow_style=False), end="")
