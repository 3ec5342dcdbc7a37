"""Where the control store keeps its tables: in memory only, or written through to Redis.

With Redis, every change is written as it happens (one hash per table), and a restarted
control store reads the tables back, so nodes, exported functions and actors (with their
names) are found again. The store's own process keeps working from memory; Redis is only
read at start. One Redis database serves one cluster (pick another with
``redis://HOST:PORT/N``). A write that fails (Redis down) is reported on stderr and does not
stop the control store: the state in memory stays right, only a restart would miss it.
"""

from __future__ import annotations

import sys
from typing import Any, cast

TABLES = ("functions", "actors", "nodes", "jobs", "gone")  # gone: ids of actors that ended


class Storage:
    """In memory only: nothing survives the process."""

    def put(self, table: str, key: str, value: Any) -> None:
        pass

    def delete(self, table: str, key: str) -> None:
        pass

    def load(self, table: str) -> dict[str, Any]:
        return {}

    def clear(self) -> None:
        """Forget a previous cluster's tables (a new cluster, not a restart)."""


class RedisStorage(Storage):
    def __init__(self, url: str, prefix: str = "ember") -> None:
        """``prefix`` names this cluster's keys, so that clusters can share a server."""
        try:
            import redis
        except ImportError as e:
            raise RuntimeError(
                "--storage redis://... needs the redis client: pip install 'ember[redis]'"
            ) from e
        self.prefix = prefix
        self.errors = redis.RedisError
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        try:
            self.client.ping()
        except redis.RedisError as e:
            raise RuntimeError(f"cannot reach the Redis server at {url}: {e}") from e

    def _key(self, table: str) -> str:
        return f"{self.prefix}:{table}"

    def put(self, table: str, key: str, value: Any) -> None:
        try:
            self.client.hset(self._key(table), key, value)
        except self.errors as e:
            _warn(table, e)

    def delete(self, table: str, key: str) -> None:
        try:
            self.client.hdel(self._key(table), key)
        except self.errors as e:
            _warn(table, e)

    def clear(self) -> None:
        self.client.delete(*(self._key(t) for t in TABLES))

    def load(self, table: str) -> dict[str, Any]:
        # Without decode_responses, the client returns bytes keys and values.
        raw = cast("dict[bytes, bytes]", self.client.hgetall(self._key(table)))
        if table == "functions":
            return {k.decode(): v for k, v in raw.items()}
        return {k.decode(): v.decode() for k, v in raw.items()}


def _warn(table: str, error: Exception) -> None:
    sys.stderr.write(f"ember control store: could not write the {table} table to Redis: {error}\n")


def open_storage(url: str | None, prefix: str = "ember") -> Storage:
    if not url:
        return Storage()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStorage(url, prefix)
    raise ValueError(
        f"--storage {url!r}: only Redis is supported as external storage (redis://HOST:PORT[/DB])."
    )
