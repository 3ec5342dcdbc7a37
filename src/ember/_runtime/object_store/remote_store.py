"""The object store of a driver that runs on no node (client mode, ``ember://HOST:PORT``).

Such a driver cannot map another host's shared memory, so the head's node manager keeps its
objects: a large ``put`` is sent whole to the head (``PutObject``) and stored there like any
object of that node, and reading a large object pulls the bytes of its file from the head
(``PullObject``, the same transfer nodes use between themselves) into memory here. The head
pulls objects from other nodes first when needed, as for its own processes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ember._protocol import messages as m
from ember._runtime.object_store.store import _Mapping, layout, parse
from ember._transport.reactor import Connection, connect_socket
from ember._transport.rpc import ask


class RemoteStore:
    def __init__(self, node: Callable[[], Connection], node_address: str, token: str) -> None:
        self._node = node
        self.node_address = node_address
        self.token = token
        self.shm_dir = self.spill_dir = ""

    def exists(self, object_id: bytes) -> bool:
        return False  # never here: the head is asked

    def tidy(self) -> None:
        """Nothing is kept mapped here."""

    def pool(self, object_id: bytes) -> bool:
        """The head frees it (told by ``FreeObjects``)."""
        return False

    def write(self, object_id: bytes, meta: bytes, buffers: Sequence[memoryview]) -> int:
        header, offsets, total = layout(len(meta), [b.nbytes for b in buffers])
        data = bytearray(total)
        data[: len(header) + len(meta)] = header + meta
        for buf, off in zip(buffers, offsets, strict=True):
            data[off : off + buf.nbytes] = memoryview(buf).cast("B")
        self._node().send(m.PutObject(object_id=object_id, data=bytes(data)))
        return total

    def read(
        self, object_id: bytes, release: Callable[[], None] | None = None
    ) -> tuple[memoryview, list[memoryview]] | None:
        """Pull the object's bytes from the head; None if the head does not have it (yet)."""
        sock = connect_socket(self.node_address, 30.0)
        try:
            reply, unpacker = ask(sock, self.token, m.PullObject(rid=1, object_id=object_id))
            if not isinstance(reply, m.PullAccepted):
                return None
            size = reply.size
            mapped = _Mapping(-1, max(size, 1))
            view = memoryview(mapped)
            got = len(leftover := unpacker.read_bytes(size))
            view[:got] = leftover
            while got < size:
                n = sock.recv_into(view[got:size])
                if not n:
                    return None
                got += n
        finally:
            sock.close()
        mapped.release = release
        return parse(view[:size])
