"""Node labels and the label selectors of tasks and actors (Ray's ``label_selector``).

A node carries string labels (``ember start --labels '{"zone": "a"}'``); a task or actor may
name, per label, the values a node must (or must not) have. Ray's selector syntax: a
plain value (``"a"``: the label equals it), ``"!a"`` (it does not), ``"in(a,b)"`` (it is one
of them) and ``"!in(a,b)"`` (it is none of them). As with Kubernetes' ``NotIn``, a node
without the label satisfies the negated forms. Keys and values follow Kubernetes' label
syntax, which Ray also uses.

A selector travels as a tuple of conditions ``(key, negated, values)``, sorted, so that it
can be part of a lease request's key and be compared.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

Condition = tuple[str, bool, tuple[str, ...]]  # (key, negated, values)
Selector = tuple[Condition, ...]

# A name or value: up to 63 characters, alphanumeric at both ends, "-_." between.
_NAME = r"[a-zA-Z0-9](?:[a-zA-Z0-9_.-]{0,61}[a-zA-Z0-9])?"
_NAME_RE = re.compile(_NAME)
_PREFIX_RE = re.compile(rf"{_NAME}(?:\.{_NAME})*")
_IN_RE = re.compile(rf"(!?)in\(\s*({_NAME}(?:\s*,\s*{_NAME})*)\s*\)")
_VALUE_RE = re.compile(rf"(!?)({_NAME})")
NODE_ID_LABEL = "ray.io/node-id"  # every node's own, as Ray sets it (its id in hex)
ACCELERATOR_TYPE_LABEL = "ray.io/accelerator-type"
# A node with an accelerator of type T offers the resource "accelerator_type:T" (1), and a
# task or actor with ``accelerator_type=T`` asks for a sliver of it, as in Ray.
ACCELERATOR_TYPE_PREFIX = "accelerator_type:"


def key_problem(key: Any) -> str | None:
    """Why ``key`` is not a valid label key, or None."""
    if not isinstance(key, str):
        return f"label keys must be strings, got {key!r}"
    prefix, _, name = key.rpartition("/")
    if "/" in key and (len(prefix) > 253 or not _PREFIX_RE.fullmatch(prefix)):
        return (
            f"label key {key!r} has an invalid prefix {prefix!r}: it must be DNS labels "
            "separated by dots, at most 253 characters"
        )
    if len(name) > 63 or not _NAME_RE.fullmatch(name):
        return (
            f"label key {key!r} is invalid: a name is at most 63 characters, alphanumeric at "
            "both ends, with '-', '_', '.' and alphanumerics between"
        )
    return None


def check_node_labels(labels: Any) -> dict[str, str]:
    """A node's labels, checked: a dict of valid keys to valid values (or ValueError)."""
    if not isinstance(labels, Mapping):
        raise ValueError(f"node labels must be a dict of strings, got {labels!r}")
    for key, value in labels.items():
        problem = key_problem(key)
        if problem is not None:
            raise ValueError(problem)
        if not isinstance(value, str):
            raise ValueError(f"the value of label {key!r} must be a string, got {value!r}")
        if value and (len(value) > 63 or not _NAME_RE.fullmatch(value)):
            raise ValueError(
                f"the value {value!r} of label {key!r} is invalid: at most 63 characters, "
                "alphanumeric at both ends, with '-', '_', '.' and alphanumerics between"
            )
    return dict(labels)


def node_labels(
    given: Mapping[str, str], node_id: bytes, resources: Mapping[str, float]
) -> dict[str, str]:
    """A node's labels: those it was given, and those Ray sets itself (its id; its
    accelerator type, from an ``accelerator_type:T`` resource)."""
    types = [
        n[len(ACCELERATOR_TYPE_PREFIX) :]
        for n in resources
        if n.startswith(ACCELERATOR_TYPE_PREFIX)
    ]
    labels = {ACCELERATOR_TYPE_LABEL: types[0]} if types else {}
    return {**labels, **given, NODE_ID_LABEL: node_id.hex()}


def parse_selector(selector: Mapping[str, str] | None) -> Selector:
    """A task's or actor's ``label_selector`` as conditions, or ValueError naming what is
    wrong."""
    if not selector:
        return ()
    conditions: list[Condition] = []
    for key, expr in selector.items():
        problem = key_problem(key)
        if problem is not None:
            raise ValueError(f"label_selector: {problem}")
        if not isinstance(expr, str):
            raise ValueError(f"label_selector[{key!r}] must be a string, got {expr!r}")
        text = expr.strip()
        found = _IN_RE.fullmatch(text)
        if found is not None:
            values = tuple(v.strip() for v in found.group(2).split(","))
        else:
            found = _VALUE_RE.fullmatch(text)
            if found is None:
                raise ValueError(
                    f"label_selector[{key!r}] = {expr!r} is not a selector: use a value "
                    "('a'), '!a', 'in(a,b)' or '!in(a,b)', with values of at most 63 "
                    "characters, alphanumeric at both ends"
                )
            values = (found.group(2),)
        conditions.append((key, found.group(1) == "!", values))
    return tuple(sorted(conditions))


def matches(selector: Selector, labels: Mapping[str, str]) -> bool:
    """Does a node with ``labels`` satisfy every condition of ``selector``?"""
    for key, negated, values in selector:
        if (labels.get(key) in values) == negated:
            return False
    return True


def describe(selector: Selector) -> str:
    """As the user wrote it: ``{'zone': 'in(a,b)'}``."""
    parts = {
        key: ("!" if negated else "")
        + (f"in({','.join(values)})" if len(values) > 1 else values[0])
        for key, negated, values in selector
    }
    return repr(parts)
