"""``ember start``, ``ember stop`` and ``ember status``.

Thin commands: they parse arguments and call the runtime's launcher. ``start`` leaves the
node's processes running in the background and records them (``_runtime/cluster_files.py``),
so ``stop`` ends exactly those and nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time
from typing import Any

from ember._runtime import cluster_files, launcher
from ember._runtime.node_cluster import node_host

DEFAULT_PORT = 6380


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ember", description="Start, stop and inspect Ember nodes on this host."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    start = commands.add_parser(
        "start",
        help="start the head of a cluster (--head) or a node that joins one (--address)",
        description="Start an Ember node in the background: the head of a new cluster "
        "(--head), or a node that joins the cluster at --address.",
    )
    role = start.add_mutually_exclusive_group(required=True)
    role.add_argument("--head", action="store_true", help="start a new cluster's head node")
    role.add_argument("--address", metavar="HOST:PORT", help="join the cluster at this address")
    start.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="the head's port (default %(default)s)"
    )
    start.add_argument("--num-cpus", type=float, help="CPUs to offer (default: all)")
    start.add_argument("--num-gpus", type=float, help="GPUs to offer (default: 0)")
    start.add_argument(
        "--resources", default="{}", metavar="JSON", help="custom resources, e.g. '{\"ssd\": 1}'"
    )
    start.add_argument(
        "--node-ip-address",
        metavar="IP",
        help="the address this node listens on and other hosts reach it at "
        "(default: this host's address)",
    )
    start.add_argument(
        "--object-store-memory", type=int, metavar="BYTES", help="shared-memory store size"
    )
    start.add_argument(
        "--storage",
        metavar="redis://HOST:PORT",
        help="head only: keep the control store's tables in this Redis server, so that a "
        "restarted control store finds its nodes and actors again",
    )
    start.add_argument(
        "--token",
        help="the cluster's token (to join; default: $EMBER_TOKEN, or the head's on this host)",
    )
    start.add_argument(
        "--node-timeout",
        type=float,
        metavar="SECONDS",
        help="head only: how long a silent node lives before it is declared dead (default 5)",
    )

    stop = commands.add_parser(
        "stop",
        help="stop the nodes that `ember start` started on this host",
        description="Stop the nodes (and their workers and control store) that `ember start` "
        "started on this host; nothing else.",
    )
    stop.add_argument(
        "--grace", type=float, default=10.0, help="seconds before they are killed outright"
    )

    status = commands.add_parser(
        "status",
        help="show the cluster's nodes, their resources and pending work",
        description="Show the nodes of a cluster, their resources and usage, and pending work.",
    )
    status.add_argument("--address", default="auto", help="HOST:PORT (default: this host's)")
    status.add_argument("--token", help="the cluster's token (default: as for start)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"start": _start, "stop": _stop, "status": _status}[args.command](args)
    except (ValueError, ConnectionError, RuntimeError, OSError) as e:
        print(f"ember {args.command}: {e}", file=sys.stderr)
        return 1


def _start(args: argparse.Namespace) -> int:
    try:
        custom = json.loads(args.resources)
    except ValueError as e:
        raise ValueError(f"--resources is not valid JSON ({e}): use e.g. '{{\"ssd\": 1}}'") from e
    if not isinstance(custom, dict):
        raise ValueError("--resources must be a JSON object, e.g. '{\"ssd\": 1}'")
    if args.storage and not args.head:
        raise ValueError("--storage belongs to the head: use it with --head")
    host = args.node_ip_address or node_host({})
    head = bool(args.head)
    if head:
        _check_port_free(host, args.port)
    token = cluster_files.new_token() if head and not args.token else None
    if not head:
        token = cluster_files.token_for(args.address, args.token)
    resources = launcher.node_resources(args.num_cpus, args.num_gpus, custom, host, head)
    record, node, _ = launcher.start_cluster_node(
        address=None if head else args.address,
        token=token or args.token,
        host=host,
        port=args.port,
        resources=resources,
        object_store_memory=args.object_store_memory,
        storage=args.storage,
        node_timeout=args.node_timeout,
        supervise=True,
    )
    cpus = resources.get("CPU", 0)
    if head:
        print(f"Started the head of an Ember cluster at {record['address']}.")
        print(f"  node {record['node_id'][:12]}, {cpus:g} CPUs, logs in {node.session_dir}/logs")
        print("To add a node on another host:")
        print(f"  ember start --address={record['address']} --token={record['token']}")
        print("To connect a driver on this host:  ember.init(address='auto')")
    else:
        print(f"Started a node of the Ember cluster at {record['address']}.")
        print(f"  node {record['node_id'][:12]}, {cpus:g} CPUs, logs in {node.session_dir}/logs")
    print("To stop the nodes started on this host:  ember stop")
    return 0


def _check_port_free(host: str, port: int) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            raise ValueError(
                f"cannot listen on {host}:{port} ({e.strerror}): pick another port with --port, "
                "or stop what uses it (`ember stop` for an earlier head)"
            ) from None


def _ours(pid: int) -> bool:
    """The process is still one we started (its pid was not reused by something else)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"ember._runtime" in f.read()
    except OSError:
        return False


def _stop(args: argparse.Namespace) -> int:
    records = [r for r in cluster_files.read_records() if r.get("origin") == "cli"]
    pids = []
    for record in records:
        for pid in (record.get("pid"), record.get("control_pid")):
            if pid and _ours(pid):
                pids.append(pid)
                os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.grace
    while any(_ours(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        if _ours(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for record in records:
        cluster_files.remove_record(record["node_id"])
    print(f"Stopped {len(records)} node(s) started by `ember start` on this host.")
    return 0


def _status(args: argparse.Namespace) -> int:
    from ember._runtime import admin

    address = args.address
    if address == "auto":
        address = cluster_files.find_node("auto")["address"]
    token = cluster_files.token_for(address, args.token)
    nodes: list[dict[str, Any]] = admin.nodes(address, token)
    jobs = admin.jobs(address, token)
    alive = [n for n in nodes if n["alive"]]
    print(
        f"Ember cluster at {address}: {len(alive)} node(s) alive, {len(nodes) - len(alive)} "
        f"dead, {len(jobs)} driver(s) connected"
    )
    for n in nodes:
        state = "alive" if n["alive"] else "dead"
        print(f"- node {n['node_id'].hex()[:12]} at {n['address']} ({n['host']}), {state}")
        if not n["alive"]:
            continue
        for name, total in sorted(n["total"].items()):
            if name.startswith("node:") or name in ("memory", "object_store_memory"):
                continue
            used = total - n["available"].get(name, 0)
            print(f"    {name}: {used:g}/{total:g} in use")
        print(f"    pending lease requests: {n['pending']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
