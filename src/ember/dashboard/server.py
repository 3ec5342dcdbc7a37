"""The dashboard's web server (aiohttp): the page, the state API's rows as JSON at Ray's
dashboard paths, the last minutes' samples, the log files (``logs.py``) and ``/metrics``.

Every request is answered from the state API at the time it comes (off the event loop: the
calls block); the only state kept here is the ring of samples (``samples.py``). With a login
token (on a cluster: the cluster's), a browser shows it once, in the login link's
``?token=``, and keeps it as a cookie; anything else gets 401.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from functools import partial
from importlib import resources
from typing import Any

from aiohttp import web

from ember._runtime.metrics_export import exposition
from ember.dashboard import metrics, samples
from ember.dashboard.logs import LogRoutes
from ember.dashboard.source import MAX_ROWS, Filter, Rows, StateSource

log = logging.getLogger("ember.dashboard")

COOKIE = "ember_dashboard_token"
# The state API's kinds at Ray's paths: /api/v0/<kind>.
KINDS = ("nodes", "jobs", "tasks", "actors", "objects", "workers", "placement_groups")
MAX_LIMIT = MAX_ROWS  # as Ray's dashboard caps a listing
WATCH_SECONDS = 30.0  # a page that polled this recently is watching: sample it all
_PREDICATES = ("=", "!=")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Dashboard:
    """The server's parts: where rows come from, the samples, who may look."""

    def __init__(
        self,
        source: StateSource,
        history: samples.History,
        login_token: str | None,
        owner_alive: Callable[[], bool],
    ) -> None:
        self.source = source
        self.history = history
        self.login_token = login_token
        self.owner_alive = owner_alive
        self.watched_at = -WATCH_SECONDS
        self.static = resources.files("ember.dashboard") / "static"

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static)
        for kind in KINDS:
            app.router.add_get(f"/api/v0/{kind}", partial(self._list, kind))
        # (the timeline's rows: each worker's finished runs, far cheaper than detailed tasks)
        app.router.add_get("/api/ember/task_runs", partial(self._list, "task_runs"))
        app.router.add_get("/api/ember/history", self._history)
        app.router.add_get("/metrics", self._metrics)
        LogRoutes(self.source.address, self.source.token).add_to(app)
        return app

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, partial(fn, *args, **kwargs))

    # ---------------------------------------------------------------- who may look

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        token = self.login_token
        if token is None:
            return await handler(request)
        given = request.query.get("token")
        if given is not None and _same(given, token):
            # The login link: keep the token as a cookie, and take it out of the address bar.
            query = {k: v for k, v in request.query.items() if k != "token"}
            response = web.Response(
                status=302, headers={"Location": str(request.rel_url.with_query(query))}
            )
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
            return response
        shown = request.cookies.get(COOKIE) or request.headers.get(
            "Authorization", ""
        ).removeprefix("Bearer ")
        if shown and _same(shown, token):
            return await handler(request)
        return web.Response(
            status=401,
            text="This Ember dashboard asks for the cluster's token: open the login link that "
            "`ember start --head` printed (http://HOST:PORT/?token=...), or send the header "
            "'Authorization: Bearer <token>'.\n",
        )

    # ---------------------------------------------------------------- the page

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return self._file("index.html")

    async def _static(self, request: web.Request) -> web.StreamResponse:
        return self._file(request.match_info["name"])

    def _file(self, name: str) -> web.StreamResponse:
        kinds = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
        suffix = name[name.rfind(".") :] if "." in name else ""
        path = self.static / name
        if "/" in name or suffix not in kinds or not path.is_file():
            raise web.HTTPNotFound()
        return web.Response(
            body=path.read_bytes(),
            content_type=kinds[suffix],
            headers={"Cache-Control": "no-cache"},
        )

    # ---------------------------------------------------------------- the data

    async def _list(self, kind: str, request: web.Request) -> web.StreamResponse:
        """Ray's ``/api/v0/<kind>``: ``limit``, ``detail`` and the filters as
        ``filter_keys``/``filter_predicates``/``filter_values``, answered as Ray's dashboard
        answers them."""
        try:
            limit, detail, filters = _list_args(request)
        except ValueError as e:
            return _json({"result": False, "msg": str(e), "data": {}}, status=400)
        try:
            found: Rows = await self._call(self.source.query, kind, filters, limit, detail)
        except ValueError as e:  # (a filter the state API refuses)
            return _json({"result": False, "msg": str(e), "data": {}}, status=400)
        except Exception as e:  # the cluster did not answer, or answered with an error
            return _json({"result": False, "msg": f"{kind}: {e}", "data": {}}, status=503)
        result = {
            "total": found.total,
            "num_after_truncation": len(found.rows),
            "num_filtered": len(found.rows),
            "result": found.rows,
            "partial_failure_warning": "\n".join(found.warnings),
            "warnings": found.warnings,
        }
        return _json({"result": True, "msg": "", "data": {"result": result}})

    async def _history(self, request: web.Request) -> web.StreamResponse:
        try:
            since = float(request.query.get("since", "0"))
        except ValueError:
            return _json({"result": False, "msg": "since must be a time in seconds"}, status=400)
        first = self.watched_at < time.monotonic() - WATCH_SECONDS
        self.watched_at = time.monotonic()
        if first:  # (a page that starts watching sees the tasks at once, not in 2 s)
            await self._sample()
        return _json(
            {
                "samples": self.history.since(since),
                "usage": self.history.usage,
                "store": self.history.store,
                "every": samples.SAMPLE_SECONDS,
            }
        )

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        try:
            snapshot = await self._call(self._snapshot)
        except Exception as e:  # the cluster did not answer, or answered with an error
            return web.Response(status=503, text=f"the cluster's state is not available: {e}\n")
        body, user_rows = snapshot
        # The users' metrics (ember.util.metrics), each node's, follow the cluster's.
        body += exposition(user_rows)
        return web.Response(body=body, content_type="text/plain", charset="utf-8")

    def _snapshot(self) -> tuple[bytes, list[dict[str, Any]]]:
        source = self.source
        workers = source.query("workers", [("is_alive", "=", "True")], MAX_ROWS).rows
        snapshot = metrics.Snapshot(
            usage=source.node_usage(),
            task_counts=source.task_counts(),
            actor_counts=source.actor_counts(),
            workers=samples.counts(workers, "node_id"),
            store=source.store_use(),
        )
        return metrics.cluster_text(snapshot), source.query("metrics", limit=MAX_ROWS).rows

    # ---------------------------------------------------------------- the samples

    async def _sample(self, quiet: bool = False) -> bool:
        """Take a sample (of everything, while a page watches); False if it failed."""
        watched = self.watched_at > time.monotonic() - WATCH_SECONDS
        try:
            await self._call(self.source.take_sample, self.history, watched)
        except Exception as e:  # (the sampler goes on: the cluster may answer next time)
            if not quiet:
                log.warning("cannot sample the cluster's state: %s", e)
            return False
        return True

    async def sample_forever(self, stop: asyncio.Event) -> None:
        """A sample every few seconds; ends the server when the node it belongs to is gone."""
        failing = False
        while not stop.is_set():
            if not self.owner_alive():
                log.info("the node is gone: the dashboard ends")
                stop.set()
                return
            failing = not await self._sample(quiet=failing)
            try:
                await asyncio.wait_for(stop.wait(), samples.SAMPLE_SECONDS)
            except asyncio.TimeoutError:
                pass


def _same(shown: str, token: str) -> bool:
    return hmac.compare_digest(shown.encode(), token.encode())


def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(value, default=str), status=status, content_type="application/json"
    )


def _list_args(request: web.Request) -> tuple[int, bool, list[Filter]]:
    query = request.query
    try:
        limit = int(query.get("limit", "100"))
    except ValueError:
        raise ValueError(f"limit must be a number, got {query.get('limit')!r}") from None
    if not 0 < limit <= MAX_LIMIT:
        raise ValueError(f"limit must be from 1 to {MAX_LIMIT}, got {limit}")
    detail = query.get("detail", "false").lower() in ("1", "true", "yes")
    keys = query.getall("filter_keys", [])
    predicates = query.getall("filter_predicates", [])
    values = query.getall("filter_values", [])
    if not len(keys) == len(predicates) == len(values):
        raise ValueError(
            "filter_keys, filter_predicates and filter_values must come as many times each"
        )
    for predicate in predicates:
        if predicate not in _PREDICATES:
            raise ValueError(f"a filter's predicate is = or !=, got {predicate!r}")
    return limit, detail, list(zip(keys, predicates, values, strict=True))


async def serve(board: Dashboard, sock: socket.socket) -> None:
    """Serve on ``sock`` until SIGTERM, or until the node is gone."""
    runner = web.AppRunner(board.app(), access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    sampler = asyncio.create_task(board.sample_forever(stop))
    await stop.wait()
    await sampler
    await runner.cleanup()
