"""One-off requests to a cluster's control store from outside any runtime (CLI, tests)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ember._protocol import messages as m
from ember._transport.reactor import connect_socket
from ember._transport.rpc import RemoteError, ask


def query(address: str, token: str, make: Callable[[int], m.Message], timeout: float = 10.0) -> Any:
    """Send one request to the control store at ``HOST:PORT`` and return its answer."""
    sock = connect_socket(f"tcp:{address}", timeout)
    try:
        reply, _ = ask(sock, token, make(1))
    finally:
        sock.close()
    if reply is None:
        raise ConnectionError(
            f"the control store at {address} closed the connection (wrong token?)"
        )
    if reply.error is not None:
        raise RemoteError(reply.error[0], reply.error[1])
    return reply.value


def nodes(address: str, token: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The control store's node table."""
    return query(address, token, m.GetNodes, timeout)  # type: ignore[no-any-return]


def jobs(address: str, token: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The jobs (drivers) connected to the cluster."""
    return query(address, token, m.ListJobs, timeout)  # type: ignore[no-any-return]
