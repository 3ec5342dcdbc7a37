"""One-off requests to a cluster's control store from outside any runtime (CLI, tests)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack

from ember._protocol import messages as m
from ember._transport.reactor import connect_socket
from ember._transport.rpc import RemoteError


def query(address: str, token: str, make: Callable[[int], m.Message], timeout: float = 10.0) -> Any:
    """Send one request to the control store at ``HOST:PORT`` and return its answer."""
    sock = connect_socket(f"tcp:{address}", timeout)
    try:
        pack = msgpack.Packer(use_bin_type=True).pack
        sock.sendall(pack(m.Auth(token).encode()) + pack(make(1).encode()))
        unpacker = msgpack.Unpacker(raw=False)
        while True:
            data = sock.recv(1 << 16)
            if not data:
                raise ConnectionError(
                    f"the control store at {address} closed the connection (wrong token?)"
                )
            unpacker.feed(data)
            for raw in unpacker:
                reply = m.decode(raw)
                if isinstance(reply, m.Reply) and reply.rid == 1:
                    if reply.error is not None:
                        raise RemoteError(reply.error[0], reply.error[1])
                    return reply.value
    finally:
        sock.close()


def nodes(address: str, token: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The control store's node table."""
    return query(address, token, m.GetNodes, timeout)  # type: ignore[no-any-return]


def jobs(address: str, token: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The jobs (drivers) connected to the cluster."""
    return query(address, token, m.ListJobs, timeout)  # type: ignore[no-any-return]
