"""What a program may ask of the cluster it runs in: the named actors, and this node's IP
address (``ray.util.list_named_actors``, ``ray.util.get_node_ip_address``)."""

from __future__ import annotations

from typing import Any

import ember


def list_named_actors(all_namespaces: bool = False) -> list[Any]:
    """The names of the live named actors in this job's namespace; with ``all_namespaces``,
    ``{"name": ..., "namespace": ...}`` for every named actor in the cluster. Detached
    actors count; an actor leaves the list when it dies."""
    from ember._api.session import runtime  # the API layer loads on first use

    entries = runtime().named_actors(bool(all_namespaces))
    if all_namespaces:
        return [{"name": e.name, "namespace": e.namespace} for e in entries]
    return [e.name for e in entries]


def get_node_ip_address(address: str = "8.8.8.8:53") -> str:
    """The address of the node this process runs on, as ``nodes()`` gives it
    (``NodeManagerAddress``). Before ``init()``: the local address the route to ``address``
    leaves from (nothing is sent), or ``127.0.0.1`` when there is no such route."""
    if ember.is_initialized():
        from ember._api.session import runtime

        return str(runtime().this_node()["host"])
    import socket  # (only before init(): the runtime has it loaded otherwise)

    host, _, port = address.rpartition(":")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((host, int(port)))
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"
