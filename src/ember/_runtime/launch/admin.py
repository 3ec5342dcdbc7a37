"""One-off requests to a cluster's control store from outside any runtime (CLI, tests).

A failure says what is at the address: nothing, something that is not Ember, or an Ember
cluster that refused the token; each is a ``ConnectionError`` whose message names the address.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

# (re-exported for ``ember status``, which shows a group's resources in their plain names)
from ember._core.resources import is_group_resource as is_group_resource
from ember._protocol import messages as m
from ember._runtime.launch import cluster_files
from ember._transport.reactor import connect_socket
from ember._transport.rpc import RemoteError, ask


class TokenRefused(ConnectionError):
    """The server closed the connection after seeing the token: a wrong one, most likely."""


class NoAnswer(ConnectionError):
    """The server took the connection and the request but answered nothing in time."""


def _connect(address: str, timeout: float) -> socket.socket:
    """``HOST:PORT``, or a local socket's full address (an ``init()`` session's store)."""
    where = address if address.startswith("unix:") else f"tcp:{address}"
    try:
        return connect_socket(where, timeout)
    except ConnectionRefusedError:
        raise ConnectionError(
            f"no Ember cluster at {address}: nothing listens there (connection refused). "
            "Check the address, and that the cluster's head runs."
        ) from None
    except TimeoutError:
        raise ConnectionError(
            f"no Ember cluster at {address}: no answer to connecting within {timeout:g} s. "
            "Check the address (a firewall may drop connections to it)."
        ) from None
    except OSError as e:  # no route, unknown host, ...
        raise ConnectionError(f"cannot reach {address}: {e.strerror or e}") from None


def reachable(address: str, timeout: float = 5.0) -> None:
    """Raise the ``ConnectionError`` of ``query`` if nothing takes a connection there."""
    _connect(address, timeout).close()


def token_for(address: str, given: str | None = None) -> str:
    """The token of the cluster at ``address`` (``cluster_files.token_for``). Without one,
    first say so if nothing listens there at all: that tells the user more."""
    try:
        return cluster_files.token_for(address, given)
    except ValueError:
        reachable(address)
        raise


def state_target(address: str | None) -> tuple[str, str | None]:
    """Where to ask about a cluster's state from outside it, and with which token (None for
    a local socket): ``HOST:PORT``, or for None / ``"auto"`` ($EMBER_ADDRESS, else) the one
    cluster or ``init()`` session on this host."""
    if address in (None, "auto"):
        address = os.environ.get("EMBER_ADDRESS") or None
    if address is None:
        clusters = sorted({r["address"] for r in cluster_files.read_records()})
        found = clusters + cluster_files.read_sessions()
        if not found:
            raise ConnectionError(
                "Could not find a running Ember cluster or init() session on this machine: "
                "start one (ember.init() or `ember start --head`), or name one elsewhere "
                "with address='HOST:PORT' (--address)."
            )
        if len(found) > 1:
            raise ConnectionError(
                f"Several Ember clusters or sessions run on this machine ({', '.join(found)}): "
                "name the one you mean with address='HOST:PORT' (--address)."
            )
        address = found[0]
    if address.startswith("unix:"):
        return address, None
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"address {address!r} is not HOST:PORT (the control store's, such as "
            "'10.0.0.5:6380'), nor 'auto'"
        )
    return address, token_for(address)


def query(
    address: str, token: str | None, make: Callable[[int], m.Message], timeout: float = 10.0
) -> Any:
    """Send one request to the control store at ``HOST:PORT`` (or at a local socket, with no
    token) and return its answer."""
    sock = _connect(address, timeout)
    try:
        reply, _ = ask(sock, token, make(1))
    except TimeoutError:
        raise NoAnswer(
            f"no Ember cluster at {address}: it took the connection but answered nothing "
            f"within {timeout:g} s. Check the address: it may be another kind of server."
        ) from None
    except OSError as e:
        raise ConnectionError(f"the connection to {address} failed: {e.strerror or e}") from None
    except Exception:  # bytes that do not decode as Ember's messages
        raise ConnectionError(
            f"no Ember cluster at {address}: another kind of server listens there (its answer "
            "is not Ember's protocol). Check the address and port."
        ) from None
    finally:
        sock.close()
    if reply is None:
        raise TokenRefused(
            f"the server at {address} closed the connection: the cluster's token is wrong, or "
            "it is not an Ember cluster"
        )
    if not isinstance(reply, m.Reply):
        return reply  # a typed answer
    if reply.error is not None:
        raise RemoteError(reply.error[0], reply.error[1])
    return reply.value


def nodes(address: str, token: str | None, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The control store's node table."""
    return query(address, token, lambda rid: m.GetNodes(rid=rid), timeout)  # type: ignore[no-any-return]


def jobs(address: str, token: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The jobs (drivers) connected to the cluster."""
    return query(address, token, lambda rid: m.ListJobs(rid=rid), timeout)  # type: ignore[no-any-return]
