"""Where the control store keeps its tables: in memory only, or written through to Redis.

With Redis, every change is written as it happens (one hash per table), and a restarted
control store reads the tables back, so nodes, exported functions and actors (with their
names) are found again. The store's own process keeps working from memory; Redis is only
read at start.
"""

from __future__ import annotations

from typing import Any


class Storage:
    """In memory only: nothing survives the process."""

    def put(self, table: str, key: str, value: Any) -> None:
        pass

    def delete(self, table: str, key: str) -> None:
        pass

    def load(self, table: str) -> dict[str, Any]:
        return {}


class RedisStorage(Storage):
    def __init__(self, url: str, prefix: str = "ember") -> None:
        try:
            import redis
        except ImportError as e:
            raise RuntimeError(
                "--storage redis://... needs the redis client: pip install 'ember[redis]'"
            ) from e
        self.prefix = prefix
        self.client = redis.Redis.from_url(url)
        try:
            self.client.ping()
        except redis.RedisError as e:
            raise RuntimeError(f"cannot reach the Redis server at {url}: {e}") from e

    def _key(self, table: str) -> str:
        return f"{self.prefix}:{table}"

    def put(self, table: str, key: str, value: Any) -> None:
        self.client.hset(self._key(table), key, value)

    def delete(self, table: str, key: str) -> None:
        self.client.hdel(self._key(table), key)

    def load(self, table: str) -> dict[str, Any]:
        raw = self.client.hgetall(self._key(table))
        decoded = {k.decode(): v for k, v in raw.items()}
        if table != "functions":
            decoded = {k: v.decode() for k, v in decoded.items()}
        return decoded


def open_storage(url: str | None) -> Storage:
    if not url:
        return Storage()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStorage(url)
    raise ValueError(
        f"--storage {url!r}: only Redis is supported as external storage (redis://HOST:PORT[/DB])."
    )
