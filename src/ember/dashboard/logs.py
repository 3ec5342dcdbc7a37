"""The Logs page's data: a cluster's log files (``/api/v0/logs``) and a piece of one
(``/api/v0/logs/file``), read through the state API's log reading
(``ember.util.state.logs``: ``list_log_files``, ``read_log``). The page follows a file live
by asking again from where the last piece ended.

The log reading is imported by name when first asked: a build without it still serves
every other page, and this one says what is missing.
"""

from __future__ import annotations

import asyncio
import importlib
from functools import partial
from types import ModuleType
from typing import Any

from aiohttp import web

TAIL_LINES = 200  # what a file shows first
TIMEOUT = 10.0


def _log_api() -> ModuleType:
    return importlib.import_module("ember.util.state.logs")


class LogRoutes:
    """``/api/v0/logs`` and ``/api/v0/logs/file`` for the cluster at ``address``."""

    def __init__(self, address: str, token: str | None) -> None:
        self.address = address
        self.token = token

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/api/v0/logs", self.files)
        app.router.add_get("/api/v0/logs/file", self.read)

    async def _ask(self, name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            call = getattr(_log_api(), name)
        except (ImportError, AttributeError):
            raise web.HTTPNotImplemented(text="this Ember cannot read log files") from None
        kwargs.update(address=self.address, token=self.token, timeout=TIMEOUT)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, partial(call, *args, **kwargs))
        except ValueError as e:
            raise web.HTTPBadRequest(text=str(e)) from None
        except Exception as e:  # the cluster did not answer, or answered with an error
            raise web.HTTPServiceUnavailable(text=f"the logs cannot be read: {e}") from None

    async def files(self, request: web.Request) -> web.StreamResponse:
        """The log files (of one node with ``node_id``) whose names match ``glob``."""
        node_id = request.query.get("node_id") or None
        rows, warnings = await self._ask(
            "list_log_files", node_id=node_id, glob=request.query.get("glob", "")
        )
        return web.json_response(
            {"result": True, "msg": "", "data": {"result": rows, "warnings": warnings}}
        )

    async def read(self, request: web.Request) -> web.StreamResponse:
        """A piece of a file: its last ``lines`` lines, or what follows ``offset``."""
        query = request.query
        try:
            offset = int(query.get("offset", "-1"))
            lines = int(query.get("lines", str(TAIL_LINES)))
        except ValueError:
            raise web.HTTPBadRequest(text="offset and lines are numbers") from None
        chunk = await self._ask(
            "read_log",
            query.get("node_id", ""),
            query.get("filename", ""),
            max(0, offset),
            tail_lines=lines if offset < 0 else 0,
        )
        # The page shows the lines without the task markers, and reads on from ``next``, a
        # byte offset (the text's length differs from it once a character takes two bytes).
        shown = _log_api().without_markers(bytes(chunk.data))
        text = shown.decode("utf-8", errors="replace")
        end = chunk.offset + len(chunk.data)
        return web.json_response(
            {"data": text, "offset": chunk.offset, "next": end, "size": chunk.size}
        )
