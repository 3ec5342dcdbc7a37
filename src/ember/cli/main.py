"""``ember start``, ``ember stop``, ``ember status`` and ``ember timeline``, the state commands
(``ember list``, ``get``, ``summary``, ``memory``: ``cli/state.py``), and the commands
libraries add.

A library (above the CLI in the layering) adds its commands through the ``ember.commands``
entry-point group: each entry is a function that adds a subparser and returns the function
that runs it. ``ember rllib`` comes this way from ``ember.rllib.scripts``.

Thin commands: they parse and check arguments and call the runtime's launcher; what they
refuse is said in terms of their own flags. ``start`` leaves the node's processes running in
the background and records them (``_runtime/launch/cluster_files.py``), so ``stop`` ends exactly
those and nothing else.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

import psutil

from ember import __version__
from ember._runtime.launch import admin, cluster_files, dashboard, launcher
from ember._runtime.node.cluster_link import node_host
from ember.cli import logs as logs_cli
from ember.cli import state as state_commands
from ember.util.state.exception import RayStateApiException

DEFAULT_PORT = 6380


Handler = Callable[[argparse.Namespace], int]


def _parser() -> tuple[argparse.ArgumentParser, dict[str, Handler]]:
    parser = argparse.ArgumentParser(
        prog="ember",
        description="Start, stop and inspect Ember nodes on this host; train RL algorithms.",
    )
    parser.add_argument("--version", action="version", version=f"ember, version {__version__}")
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
        "--memory",
        type=int,
        metavar="BYTES",
        help="the memory resource tasks and actors reserve with memory=... (default: the "
        "memory available beside the object store)",
    )
    start.add_argument(
        "--labels",
        default="",
        metavar="LABELS",
        help="node labels for label_selector, as JSON or key=value pairs: "
        "'{\"zone\": \"a\"}' or 'zone=a,disk=ssd'",
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
    start.add_argument(
        "--include-dashboard",
        type=_boolean,
        default=True,
        metavar="BOOL",
        help="head only: serve the dashboard (default: true)",
    )
    start.add_argument(
        "--dashboard-host",
        metavar="HOST",
        help="head only: the address the dashboard listens on (default: 127.0.0.1; 0.0.0.0 "
        "for every address)",
    )
    start.add_argument(
        "--dashboard-port",
        type=int,
        metavar="PORT",
        help="head only: the dashboard's port (default: 8265, or the next free one)",
    )
    start.add_argument(
        "--log-dir",
        metavar="DIR",
        help="keep this node's logs (and its workers' and control store's) in a folder of its "
        f"own in DIR (default: ${cluster_files.LOG_DIR_ENV}; without either, they are in the "
        "node's session folder, which `ember stop` removes)",
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
        help="show the cluster's nodes, their resources and the work waiting for them",
        description="Show the nodes of a cluster, their resources and usage, and the tasks "
        "and actors waiting for resources.",
    )
    status.add_argument("--address", default="auto", help="HOST:PORT (default: this host's)")
    status.add_argument("--token", help="the cluster's token (default: as for start)")
    timeline = commands.add_parser(
        "timeline",
        help="write a Chrome trace of the tasks that ran (chrome://tracing, Perfetto)",
        description="Write the tasks the cluster's nodes remember as a Chrome trace: one row "
        "per worker, a box per task. Open the file in chrome://tracing or "
        "https://ui.perfetto.dev.",
    )
    timeline.add_argument("--address", help="HOST:PORT (default: this host's)")
    timeline.add_argument(
        "--output", metavar="FILE", help="where to write it (default: a new file in TMPDIR)"
    )
    handlers: dict[str, Handler] = {
        "start": _start,
        "stop": _stop,
        "status": _status,
        "timeline": _timeline,
    }
    handlers.update(state_commands.add_commands(commands))
    handlers["logs"] = logs_cli.add_parser(commands)
    for entry in entry_points(group="ember.commands"):
        handlers[entry.name] = entry.load()(commands)
    return parser, handlers


def main(argv: list[str] | None = None) -> int:
    parser, handlers = _parser()
    args = parser.parse_args(logs_cli.with_default_kind(sys.argv[1:] if argv is None else argv))
    try:
        return handlers[args.command](args)
    except (ValueError, ConnectionError, RuntimeError, OSError, RayStateApiException) as e:
        print(f"ember {args.command}: {e}", file=sys.stderr)
        return 1


_TOKEN_HINT = "pass the token `ember start --head` printed with --token, or set EMBER_TOKEN"


def _start(args: argparse.Namespace) -> int:
    custom = _custom_resources(args.resources)
    labels = _labels(args.labels)
    _check_numbers(args)
    for flag, given in (
        ("--storage", args.storage),
        ("--dashboard-host", args.dashboard_host),
        ("--dashboard-port", args.dashboard_port is not None),
    ):
        if given and not args.head:
            raise ValueError(f"{flag} belongs to the head: use it with --head")
    address = None if args.head else _host_port(args.address, "--address")
    host = args.node_ip_address or node_host(None)
    _check_node_ip(host, given=bool(args.node_ip_address))
    board = None
    if address is None:
        _check_port_free(host, args.port)
        token = args.token or cluster_files.new_token()
        if args.include_dashboard:  # (bound now: a port in use fails before a node starts)
            board = dashboard.listen_socket(
                args.dashboard_host or dashboard.DEFAULT_HOST,
                args.dashboard_port,
                "--dashboard-port",
            )
    else:
        token = admin.token_for(address, args.token)
    resources = launcher.node_resources(
        args.num_cpus, args.num_gpus, custom, host, not address, args.memory
    )
    try:
        record, node, _ = launcher.start_cluster_node(
            address=address,
            token=token,
            host=host,
            port=args.port,
            resources=resources,
            object_store_memory=args.object_store_memory,
            storage=args.storage,
            node_timeout=args.node_timeout,
            supervise=True,
            log_dir=args.log_dir,
            labels=labels,
            dashboard=board,
        )
    except admin.TokenRefused as e:
        raise ConnectionError(f"{e}: {_TOKEN_HINT}") from None
    cpus = resources.get("CPU", 0)
    if cluster_files.logs_kept(node.log_dir, node.session_dir):
        logs = f"logs in {node.log_dir} (kept after `ember stop`)"
    else:
        logs = f"logs in {node.log_dir} (removed by `ember stop`; --log-dir keeps them)"
    if address is None:
        print(f"Started the head of an Ember cluster at {record['address']}.")
        print(f"  node {record['node_id'][:12]}, {cpus:g} CPUs, {logs}")
        print("To add a node on another host:")
        print(f"  ember start --address={record['address']} --token={record['token']}")
        print("To connect a driver on this host:  ember.init(address='auto')")
        if node.dashboard is not None:
            print(f"The dashboard (it asks for the token): {node.dashboard.login_url}")
    else:
        print(f"Started a node of the Ember cluster at {record['address']}.")
        print(f"  node {record['node_id'][:12]}, {cpus:g} CPUs, {logs}")
    print("To stop the nodes started on this host:  ember stop")
    return 0


def _timeline(args: argparse.Namespace) -> int:
    import tempfile

    import ember

    path = args.output or os.path.join(
        tempfile.gettempdir(), time.strftime("ember-timeline-%Y-%m-%d_%H-%M-%S.json")
    )
    ember.timeline(path, address=args.address)
    print(f"Trace file written to {path}")
    print("Open it in chrome://tracing or https://ui.perfetto.dev.")
    return 0


def _boolean(text: str) -> bool:
    """Ray's spelling of a flag's truth: true/false, 1/0, yes/no."""
    value = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
    if text.lower() not in value:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return value[text.lower()]


def _custom_resources(text: str) -> dict[str, float]:
    try:
        custom = json.loads(text)
    except ValueError as e:
        raise ValueError(f"--resources is not valid JSON ({e}): use e.g. '{{\"ssd\": 1}}'") from e
    if not isinstance(custom, dict):
        raise ValueError("--resources must be a JSON object, e.g. '{\"ssd\": 1}'")
    for name, value in custom.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            raise ValueError(
                f"--resources: {name!r} must be a non-negative number, got {json.dumps(value)}: "
                f"use e.g. '{{\"{name}\": 1}}'"
            )
    return custom


def _labels(text: str) -> dict[str, str]:
    """``--labels``: a JSON object, or ``key1=val1,key2=val2`` (checked by the node's start)."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            labels = json.loads(stripped)
        except ValueError as e:
            raise ValueError(
                f'--labels is not valid JSON ({e}): use e.g. \'{{"zone": "a"}}\''
            ) from e
        if not isinstance(labels, dict):
            raise ValueError('--labels must be a JSON object, e.g. \'{"zone": "a"}\'')
        return labels
    pairs = [p.strip() for p in stripped.split(",") if p.strip()]
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--labels: {pair!r} is not key=value: use e.g. 'zone=a,disk=ssd'")
    return {k.strip(): v.strip() for k, _, v in (p.partition("=") for p in pairs)}


def _check_numbers(args: argparse.Namespace) -> None:
    if not 0 < args.port < 65536:
        raise ValueError(f"--port {args.port} is not a port number: use 1 to 65535")
    for flag, value in (("--num-cpus", args.num_cpus), ("--num-gpus", args.num_gpus)):
        if value is not None and not value >= 0:
            raise ValueError(f"{flag} must be a non-negative number, got {value:g}")
    for flag, value in (
        ("--object-store-memory", args.object_store_memory),
        ("--memory", args.memory),
        ("--node-timeout", args.node_timeout),
    ):
        if value is not None and not value > 0:
            raise ValueError(f"{flag} must be a positive number, got {value:g}")


def _host_port(value: str, flag: str) -> str:
    """``value`` if it is HOST:PORT, else an error that says so in terms of ``flag``."""
    host, _, port = value.rpartition(":")
    if not host or "/" in host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"{flag} {value} is not HOST:PORT: give the head's address and port, e.g. "
            f"{flag} 127.0.0.1:{DEFAULT_PORT}"
        )
    return value


def _check_node_ip(host: str, given: bool) -> None:
    """Refuse an address that is not one of this host's: nothing could listen on it."""
    with socket.socket() as probe:
        try:
            probe.bind((host, 0))
            return
        except OSError as e:
            why = e.strerror or str(e)
    mine = sorted(
        {
            a.address
            for addrs in psutil.net_if_addrs().values()
            for a in addrs
            if a.family == socket.AF_INET
        }
    )
    if given:
        raise ValueError(
            f"--node-ip-address {host} is not an address of this host ({why}): give one of "
            f"its own: {', '.join(mine)}"
        )
    raise ValueError(
        f"this host's address {host} (from its name) cannot be listened on ({why}): give one "
        f"with --node-ip-address: {', '.join(mine)}"
    )


def _check_port_free(host: str, port: int) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            if e.errno == errno.EACCES:
                advice = "ports below 1024 need root: pick another port with --port"
            else:
                advice = (
                    "pick another port with --port, or stop what uses it (`ember stop` for an "
                    "earlier head)"
                )
            raise ValueError(f"cannot listen on {host}:{port} ({e.strerror}): {advice}") from None


def _ours(pid: int, started: float | None) -> bool:
    """The process is still one we started: the pid was not reused by something else (even
    another Ember process: the start time tells)."""
    if not cluster_files.running(pid, started):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            command = f.read()
    except OSError:
        return False
    # Named by setproctitle once running ("ember::node"), by its module before that.
    return command.startswith(b"ember::") or any(
        module in command for module in (b"ember._runtime", b"ember.dashboard")
    )


def _stop(args: argparse.Namespace) -> int:
    records = [r for r in cluster_files.read_records() if r.get("origin") == "cli"]
    procs = []
    for record in records:
        for pid, started in (
            (record.get("pid"), record.get("pid_started")),
            (record.get("control_pid"), record.get("control_started")),
            (record.get("dashboard_pid"), record.get("dashboard_started")),
        ):
            if pid and _ours(pid, started):
                procs.append((pid, started))
                os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.grace
    while any(_ours(*p) for p in procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    killed = [p for p in procs if _ours(*p)]
    for pid, _ in killed:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0  # (gone in an instant; not while it still writes)
    while any(_ours(*p) for p in killed) and time.monotonic() < deadline:
        time.sleep(0.01)
    for record in records:
        # A node that stopped removed its files; one that had to be killed could not.
        cluster_files.remove_record_files(record)
        cluster_files.remove_record(record["node_id"])
    print(f"Stopped {len(records)} node(s) started by `ember start` on this host.")
    return 0


def _status(args: argparse.Namespace) -> int:
    address = _auto_address() if args.address == "auto" else _host_port(args.address, "--address")
    token = admin.token_for(address, args.token)
    try:
        nodes: list[dict[str, Any]] = admin.nodes(address, token)
        jobs = admin.jobs(address, token)
    except admin.TokenRefused as e:
        raise ConnectionError(f"{e}: {_TOKEN_HINT}") from None
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
            if admin.is_group_resource(name):  # (counted in its plain name, as in Ray)
                continue
            used = total - n["available"].get(name, 0)
            print(f"    {name}: {used:g}/{total:g} in use")
        for line in _waiting(n["pending"]) or ["nothing waiting for resources"]:
            print(f"    {line}")
    return 0


def _auto_address() -> str:
    """The cluster to show when none is named: $EMBER_ADDRESS, or the one on this host."""
    named = os.environ.get("EMBER_ADDRESS")
    if named:
        return _host_port(named, "EMBER_ADDRESS")
    return cluster_files.the_local_cluster(
        "start one with `ember start --head`, or name one elsewhere with --address HOST:PORT",
        "name the one you mean with --address HOST:PORT",
    )


def _waiting(pending: list[list[Any]]) -> list[str]:
    """ "3 tasks waiting for {CPU: 1}" per kind and shape; "16+" where a caller has asked for
    as many workers as it asks for at once, so more of its tasks may wait behind them."""
    lines = []
    for kind, shape, count, capped in sorted(pending, key=lambda p: (p[0] != "task", str(p[1]))):
        what = ", ".join(f"{name}: {amount:g}" for name, amount in sorted(shape.items()))
        plural = "s" if count != 1 or capped else ""
        more = "+" if capped else ""
        lines.append(f"{count}{more} {kind}{plural} waiting for {{{what}}}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
