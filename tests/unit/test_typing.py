"""What a user's type checker sees of the public API: mypy on a small program, in strict mode,
must reveal ObjectRef[T] from ``f.remote()``, T from ``get`` and so on, and catch a misuse."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("mypy")

SRC = Path(__file__).resolve().parents[2] / "src"

PROGRAM = """
from collections.abc import Iterator

import ember

@ember.remote
def f(x: int) -> str:
    return str(x)

@ember.remote
async def fetch() -> float:
    return 1.0

@ember.remote(num_cpus=2)
def pair(x: int, y: int = 0) -> list[int]:
    return [x, y]

@ember.remote(num_returns=2)
def two() -> tuple[int, int]:
    return 1, 2

@ember.remote
def count(n: int) -> Iterator[int]:
    yield n

class Counter:
    def incr(self) -> int:
        return 1

# mypy ignores what a class decorator returns: call remote() on the class for a typed handle.
RemoteCounter = ember.remote(Counter)

ref = f.remote(1)
reveal_type(ref)
reveal_type(ember.get(ref))
reveal_type(ember.get([ref, ref]))
reveal_type(ember.put(3))
reveal_type(f.remote(ember.put(1)))
reveal_type(fetch.remote())
reveal_type(pair.remote(1, y=2))
reveal_type(f.options(num_cpus=1).remote(1))
reveal_type(two.remote())
reveal_type(f.options(num_returns=2).remote(1))
reveal_type(RemoteCounter.remote())
reveal_type(ember.wait([ref], timeout=1.0))
reveal_type(count.remote(3))
reveal_type(next(count.remote(3)))
ember.get(ref) + 1
"""

EXPECTED = [
    "ember._runtime.object_ref.ObjectRef[str]",
    "str",
    "list[str]",
    "ember._runtime.object_ref.ObjectRef[int]",
    "ember._runtime.object_ref.ObjectRef[str]",
    "ember._runtime.object_ref.ObjectRef[float]",
    "ember._runtime.object_ref.ObjectRef[list[int]]",
    "ember._runtime.object_ref.ObjectRef[str]",
    "Any",  # num_returns=2: a list of refs, not typed further
    "Any",
    "ember._api.actor.ActorHandle[program.Counter]",
    "tuple[list[ember._runtime.object_ref.ObjectRef[str]], "
    "list[ember._runtime.object_ref.ObjectRef[str]]]",
    "ember._runtime.object_ref_generator.ObjectRefGenerator[int]",
    "ember._runtime.object_ref.ObjectRef[int]",
]


def test_revealed_types(tmp_path: Path) -> None:
    program = tmp_path / "program.py"
    program.write_text(textwrap.dedent(PROGRAM))
    env = {**os.environ, "MYPYPATH": str(SRC)}
    # Errors inside ember are the project's own check's business (see pyproject.toml); here
    # only the user's program counts.
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent"]
        + ["--no-incremental", "--config-file=", "program.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    revealed = [t.replace("builtins.", "") for t in re.findall(r'Revealed type is "(.*)"', out)]
    assert revealed == EXPECTED, out
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 1 and 'Unsupported operand types for + ("str" and "int")' in errors[0], (
        out
    )
