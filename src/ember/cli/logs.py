"""``ember logs``: the log files of a cluster's nodes, and the output of a task, an actor or a
worker, as Ray's ``ray logs``. ``ember logs GLOB`` is short for ``ember logs cluster GLOB``.
Reading goes through ``ember.util.state.logs`` (``get_log``, ``list_log_files``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from ember.util.state import logs

KINDS = ("cluster", "worker", "actor", "task")
DEFAULT_TAIL = 1000  # (as Ray's CLI)


def with_default_kind(argv: list[str]) -> list[str]:
    """``ember logs [GLOB] ...`` means ``ember logs cluster [GLOB] ...``."""
    if argv[:1] == ["logs"] and (len(argv) == 1 or argv[1] not in (*KINDS, "-h", "--help")):
        return ["logs", "cluster", *argv[1:]]
    return argv


def add_parser(commands: argparse._SubParsersAction) -> Callable[[argparse.Namespace], int]:
    parser = commands.add_parser(
        "logs",
        help="list the cluster's log files, or print one: a task's, an actor's, a worker's",
        description="List the log files of the cluster's nodes, or print one (`ember logs "
        "GLOB` is `ember logs cluster GLOB`). A worker's log holds both its stdout and stderr.",
    )
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    cluster = kinds.add_parser(
        "cluster",
        help="list the log files matching GLOB per node; print the file if only one matches",
        description="List the log files whose names match GLOB (all by default), per node. "
        "If exactly one file matches, print it.",
    )
    cluster.add_argument("glob", nargs="?", default="", metavar="GLOB", help="e.g. 'node.log'")
    worker = kinds.add_parser(
        "worker",
        help="print a worker's log",
        description="Print the log of the worker with this process id.",
    )
    worker.add_argument("--pid", type=int, required=True, help="the worker's process id")
    actor = kinds.add_parser(
        "actor",
        help="print an actor's log",
        description="Print the log of the worker that hosts this actor (all it printed).",
    )
    actor.add_argument("--id", "-a", dest="actor_id", help="the actor's id (hex)")
    actor.add_argument("--pid", type=int, help="or its worker's process id")
    task = kinds.add_parser(
        "task",
        help="print what a task printed",
        description="Print the lines a task printed, from the log of the worker that ran it.",
    )
    task.add_argument("--id", dest="task_id", required=True, help="the task's id (hex)")
    task.add_argument(
        "--attempt-number", type=int, default=0, help="which attempt of the task (default 0)"
    )
    for sub in (cluster, worker, actor, task):
        sub.add_argument(
            "--address", default=None, help="HOST:PORT of the cluster (default: this host's)"
        )
        sub.add_argument("--token", help="the cluster's token (default: as for `ember status`)")
        sub.add_argument("--node-id", help="the node's id in hex (or the start of it)")
        sub.add_argument("--node-ip", help="the node's address")
        sub.add_argument(
            "--follow", "-f", action="store_true", help="keep printing new lines until Ctrl-C"
        )
        sub.add_argument(
            "--tail",
            type=int,
            default=DEFAULT_TAIL,
            help=f"print only the last N lines (default {DEFAULT_TAIL}; -1 for all)",
        )
        sub.add_argument(
            "--interval", type=float, default=None, help="seconds between polls with --follow"
        )
        sub.add_argument(
            "--timeout",
            type=int,
            default=logs.DEFAULT_RPC_TIMEOUT,
            help=f"seconds to wait for each answer (default {logs.DEFAULT_RPC_TIMEOUT})",
        )
        sub.add_argument(
            "--err", action="store_true", help="accepted for Ray's sake: the log holds both streams"
        )
    return run


def run(args: argparse.Namespace) -> int:
    if args.kind == "actor" and args.actor_id is None and args.pid is None:
        raise ValueError("give the actor's --id or its worker's --pid")
    what: dict[str, Any] = {}
    if args.kind == "cluster":
        files, warnings = logs.list_log_files(
            args.address,
            args.node_id,
            args.glob,
            node_ip=args.node_ip,
            token=args.token,
            timeout=args.timeout,
        )
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        if not files and args.glob:
            raise ValueError(f"no log file matches {args.glob!r} on any live node")
        if not args.glob or len(files) != 1:
            _print_files(files)
            return 0
        what = {"filename": files[0]["name"]}
        args.node_id = files[0]["node_id"]
    elif args.kind == "worker" or (args.kind == "actor" and args.actor_id is None):
        what = {"pid": args.pid}
    elif args.kind == "actor":
        what = {"actor_id": args.actor_id}
    else:
        what = {"task_id": args.task_id, "attempt_number": args.attempt_number}
    lines = logs.get_log(
        args.address,
        args.node_id,
        args.node_ip,
        follow=args.follow,
        tail=args.tail,
        timeout=args.timeout,
        errors="replace",
        _interval=args.interval,
        _token=args.token,
        **what,
    )
    try:
        for line in lines:
            sys.stdout.write(line)
            sys.stdout.flush()
    except KeyboardInterrupt:  # (how --follow ends)
        pass
    return 0


def _print_files(files: list[dict[str, Any]]) -> None:
    by_node: dict[str, dict[str, list[str]]] = {}
    for f in files:
        group = by_node.setdefault(f["node_id"], {}).setdefault(f["category"], [])
        group.append(f["name"] + (f"  (actor {f['actor_id']})" if f["actor_id"] else ""))
    for node_id, groups in by_node.items():
        print(f"node {node_id}:")
        for name, names in sorted(groups.items()):
            print(f"  {name}:")
            for line in names:
                print(f"    {line}")
