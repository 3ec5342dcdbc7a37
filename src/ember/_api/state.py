"""One question to the cluster's state (``StateQuery``), from a driver, the CLI or the
dashboard: through this process's runtime when it is connected and no address is given,
else straight to the control store at ``address``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from ember._core import state_filters
from ember._protocol import messages as m
from ember._runtime import state


class StateResult(NamedTuple):
    rows: list[dict[str, Any]]
    total: int  # rows that passed the filters, before the limit
    warnings: list[str]


def query(
    kind: str,
    *,
    address: str | None = None,
    filters: Iterable[Sequence[Any]] | None = None,
    limit: int = 100,
    detail: bool = False,
    timeout: float = 30.0,
    token: str | None = None,
) -> StateResult:
    checked = state_filters.check(filters)
    limit = state_filters.check_limit(limit)

    def make(rid: int) -> m.Message:
        return m.StateQuery(
            rid=rid, kind=kind, detail=detail, filters=checked, limit=limit, timeout=timeout
        )

    value = ask(make, address=address, timeout=timeout, token=token)
    return StateResult(value["rows"], value["total"], value["warnings"])


def ask(
    make: Callable[[int], m.Message],
    *,
    address: str | None = None,
    timeout: float = 30.0,
    token: str | None = None,
) -> Any:
    """The control store's answer to one request (a Reply's value, or a typed answer);
    ``token``: the cluster's at ``address``, if this host has no record of it."""
    rt = state.current()
    if address is None and rt is not None:
        control_request = getattr(rt, "control_request", None)
        if control_request is None:
            raise RuntimeError(
                "the state API asks the cluster, and local_mode runs everything in this "
                "process without one: call ember.init() without local_mode."
            )
        try:
            return control_request(make, timeout=timeout)
        except TimeoutError:
            raise TimeoutError(_too_slow("the cluster", timeout)) from None
    from ember._runtime.launch import admin

    if token is not None and address not in (None, "auto"):
        target = address
    else:  # (None or "auto": the one cluster or init() session on this host)
        target, token = admin.state_target(address)
    try:
        return admin.query(target, token, make, timeout)
    except admin.NoAnswer:
        raise TimeoutError(
            _too_slow(f"the cluster at {target}", timeout)
            + " (or it is not an Ember cluster: check the address)"
        ) from None


def _too_slow(who: str, timeout: float) -> str:
    return (
        f"{who} answered the state query too slowly: no answer within the timeout of "
        f"{timeout:g} s. Raise the timeout (--timeout), or filter to ask for fewer rows"
    )
