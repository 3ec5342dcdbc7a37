"""Identifiers for jobs, tasks, objects, actors, workers and nodes.

Ids are raw bytes on the wire and in tables. A process draws one random prefix at start and
counts from it, so making an id costs no system call; collisions across processes are as
unlikely as between random 96-bit numbers.
"""

from __future__ import annotations

import itertools
import os

TASK_ID_LEN = 12
OBJECT_ID_LEN = 16
ACTOR_ID_LEN = 12
UNIQUE_ID_LEN = 12


class IdGenerator:
    """Makes unique ids for this process; reseeded after fork so children never repeat."""

    def __init__(self) -> None:
        self._reseed()
        os.register_at_fork(after_in_child=self._reseed)

    def _reseed(self) -> None:
        self._prefix = os.urandom(6)
        self._counter = itertools.count(1)

    def unique(self, length: int = UNIQUE_ID_LEN) -> bytes:
        # itertools.count is atomic under the GIL, so no lock is needed on the hot path.
        n = next(self._counter)
        return self._prefix + n.to_bytes(length - len(self._prefix), "big")


_gen = IdGenerator()


def new_task_id() -> bytes:
    return _gen.unique(TASK_ID_LEN)


def new_actor_id() -> bytes:
    return _gen.unique(ACTOR_ID_LEN)


def random_id(length: int = UNIQUE_ID_LEN) -> bytes:
    return os.urandom(length)


def return_object_id(task_id: bytes, index: int) -> bytes:
    """The id of a task's index-th return value (1-based), derivable from the task id."""
    return task_id + index.to_bytes(OBJECT_ID_LEN - TASK_ID_LEN, "big")


def put_object_id() -> bytes:
    """Objects made by ``put`` get index 0, which no task return uses."""
    return return_object_id(new_task_id(), 0)


def task_of(object_id: bytes) -> bytes:
    return object_id[:TASK_ID_LEN]
