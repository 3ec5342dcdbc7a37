"""What long-lived nodes leave on their host: a record per node and the cluster's token.

``ember start`` (and ``ember.testing.Cluster``) write one record per node they start into a
folder only this user can open: the node's processes, where it listens locally, and the
cluster it belongs to with that cluster's token. ``ember stop`` ends exactly the processes in
the records it wrote; ``init(address="auto")`` or ``init(address="HOST:PORT")`` finds the
node to connect through here.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import stat
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

from ember._transport.process import process_alive

# Where the user wants logs kept (as ``ember start --log-dir`` does for one node): a folder
# per session in it, left in place. Without it a session's logs go with the session.
LOG_DIR_ENV = "EMBER_LOG_DIR"

# A node that does not stop when asked writes where its threads are to its log on this
# signal, just before it is killed: the kept log then says why it hung.
DUMP_STACKS = signal.SIGUSR2


def ember_tmp(root: str | None = None) -> str:
    """This user's folder for Ember's files (sessions, logs, records) in ``root`` (default
    the system's temporary folder), which only this user may open: on a shared temp folder,
    another user must not plant or read records."""
    root = os.path.abspath(root) if root else tempfile.gettempdir()
    return _private_dir(os.path.join(root, f"ember-{os.getuid()}"))


def logs_kept(log_dir: str, session_dir: str) -> bool:
    """Are a session's logs kept after it (not in its folder)?"""
    return not log_dir.startswith(os.path.join(session_dir, "logs"))


def describe_logs(path: str, session_dir: str) -> str:
    """A log file or folder, for a message that points to it: says when it goes away."""
    if logs_kept(path, session_dir):
        return path
    return (
        f"{path} (deleted when the session ends; to keep logs, set {LOG_DIR_ENV} or start "
        "the node with `ember start --log-dir`)"
    )


def log_tail(path: str, lines: int = 30) -> str:
    """The last lines of a log, for a message that says why a process failed."""
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no log)"


def remove_node_files(
    shm_dir: str | None, session_dir: str, log_dir: str | None = None, keep_logs: bool = False
) -> str | None:
    """Remove what a node leaves on this host: its shared memory (real memory, not disk) and
    its session folder (sockets, spilled objects, and its logs unless they are kept
    elsewhere). With ``keep_logs`` (it failed), logs in the session folder stay: returns that
    folder then, if it is there."""
    if shm_dir:
        shutil.rmtree(shm_dir, ignore_errors=True)
    if not (keep_logs and log_dir and not logs_kept(log_dir, session_dir)):
        shutil.rmtree(session_dir, ignore_errors=True)
        return None
    with contextlib.suppress(FileNotFoundError), os.scandir(session_dir) as entries:
        for entry in entries:
            if entry.path != log_dir:
                shutil.rmtree(entry.path, ignore_errors=True)
    return log_dir if os.path.isdir(log_dir) else None


def records_dir() -> str:
    return _private_dir(os.path.join(ember_tmp(), "nodes"))


def _private_dir(path: str) -> str:
    """Make ``path`` a folder of this user's that only this user can open, or refuse."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise PermissionError(
            f"{path} is not a folder of this user's: remove it, or point TMPDIR elsewhere"
        )
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def new_token() -> str:
    return secrets.token_hex(16)


def cluster_address(tcp_address: str) -> str:
    """``tcp:HOST:PORT`` -> ``HOST:PORT``, the form users type."""
    return tcp_address[4:] if tcp_address.startswith("tcp:") else tcp_address


def write_record(record: dict[str, Any]) -> str:
    """Write (or rewrite) a node's record."""
    return _write_whole(os.path.join(records_dir(), f"{record['node_id']}.json"), record)


def _write_whole(path: str, record: dict[str, Any]) -> str:
    """Write a record as JSON whole: readers never see half of one."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(record, f)
    os.replace(tmp, path)
    return path


def remove_record(node_id_hex: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(records_dir(), f"{node_id_hex}.json"))


def read_records() -> list[dict[str, Any]]:
    """Records of nodes whose process still runs. A node that died (killed, out of memory)
    cleaned nothing up: its folders go with its record (its logs stay, and we say where)."""
    out = []
    for path, record, alive in _read_all(records_dir()):
        if alive:
            out.append(record)
            continue
        kept = remove_record_files(record, keep_logs=True)
        if kept:
            sys.stderr.write(
                f"ember: node {record['node_id'][:12]} (pid {record.get('pid')}) of the cluster "
                f"at {record.get('address')} died; its logs are in {kept}\n"
            )
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    return out


def remove_record_files(record: dict[str, Any], keep_logs: bool = False) -> str | None:
    """``remove_node_files`` for a recorded node."""
    return remove_node_files(
        record["shm_dir"], record["session_dir"], record.get("log_dir"), keep_logs
    )


def started_at(pid: int) -> float | None:
    """When a process started (None if there is none): with its pid, this names it, since
    pids are reused."""
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def running(pid: int | None, started: float | None) -> bool:
    """Does the process recorded as ``pid``, started at ``started``, still run? (A start time
    is derived from the boot time, which the clock's adjustments can move by a little.)"""
    if not pid or not process_alive(pid):
        return False
    if started is None:  # (recorded before start times were)
        return True
    now = started_at(pid)
    return now is not None and abs(now - started) < 1.0


def token_for(address: str, given: str | None = None) -> str:
    """The token of the cluster at ``address``: given, from $EMBER_TOKEN, or from a record of
    one of its nodes on this host."""
    token = given or os.environ.get("EMBER_TOKEN")
    if token:
        return token
    for record in read_records():
        if record["address"] == address:
            return str(record["token"])
    raise ValueError(
        f"no token for the cluster at {address}: pass --token (`ember start --head` printed "
        "it) or set EMBER_TOKEN."
    )


def the_local_cluster(if_none: str, if_several: str) -> str:
    """The address of the one cluster with a node on this host; else an error that ends with
    advice in the words of the caller's interface (CLI flags or init() arguments)."""
    clusters: list[str] = sorted({r["address"] for r in read_records()})
    if not clusters:
        raise ConnectionError(f"Could not find a running Ember cluster on this machine: {if_none}.")
    if len(clusters) > 1:
        raise ConnectionError(
            f"Several Ember clusters run on this machine ({', '.join(clusters)}): {if_several}."
        )
    return clusters[0]


def sessions_dir() -> str:
    return _private_dir(os.path.join(ember_tmp(), "sessions"))


def write_session(node_id_hex: str, control_address: str, pid: int) -> None:
    """Record a single-machine ``init()`` session (its node's pid and its control store's
    local socket), so that ``ember list`` and the state API find it from another process.
    ``init(address="auto")`` does not: it joins clusters that ``ember start`` started."""
    record = {"control_address": control_address, "pid": pid, "pid_started": started_at(pid)}
    _write_whole(os.path.join(sessions_dir(), f"{node_id_hex}.json"), record)


def remove_session(node_id_hex: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(sessions_dir(), f"{node_id_hex}.json"))


def read_sessions() -> list[str]:
    """The control store addresses of the ``init()`` sessions running on this host (a
    record whose node is gone, killed before it could remove it, is removed here)."""
    out = []
    for path, record, alive in _read_all(sessions_dir()):
        if alive:
            out.append(str(record["control_address"]))
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    return out


def _read_all(folder: str) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """Each record in ``folder`` (path, record, whether its process still runs); one that
    cannot be read (being replaced) is passed over."""
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        try:
            with open(path) as f:
                record = json.load(f)
        except (OSError, ValueError):
            continue
        yield path, record, running(record.get("pid"), record.get("pid_started"))


def find_node(address: str) -> dict[str, Any]:
    """The node on this host to connect a driver through, for ``"auto"`` or ``HOST:PORT``."""
    records = read_records()
    if address == "auto":
        address = os.environ.get("EMBER_ADDRESS", "auto")
    if address == "auto":
        address = the_local_cluster(
            "start one with `ember start --head`, or call ember.init() without an address to "
            "run on this machine alone",
            "pass the one you mean, as ember.init(address='HOST:PORT')",
        )
    mine = [r for r in records if r["address"] == address]
    if not mine:
        raise ConnectionError(
            f"No node of the Ember cluster at {address} runs on this machine. Join one first "
            f"with `ember start --address={address}`, or connect as a remote client with "
            f"ember.init('ember://{address}')."
        )
    mine.sort(key=lambda r: not r.get("is_head", False))
    return mine[0]
    return True
