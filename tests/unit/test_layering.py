"""The import layering rule (docs: ARCHITECTURE "Layering"), checked by parsing the source.

Tiers, lowest first: ``_protocol`` < ``_transport``; ``_core`` (beside ``_transport``, on top of
``_protocol`` only) < ``_runtime`` < ``_api`` < the public API (``ember/__init__.py`` and
``ember.util``, which is part of Ray's core API too), with the CLI, the dashboard and the
libraries (``ember/tune``, ``ember/rllib``, ``ember/experimental``) above. The dashboard, a
process the launcher starts, reads its settings as the CLI does (``_runtime.launch``) and the
state API's raw rows from ``_api``.
``ember.exceptions`` is public but imports nothing from ember, so every tier may use it. Every
import counts, including ones inside functions or under ``TYPE_CHECKING``: a lazy import is still
a dependency.

Also checked here: ``import ember`` starts no thread or process, sets no environment variable,
and imports no heavy optional library.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "ember"

LIBRARIES = ("tune", "rllib", "experimental")

# Which tiers each tier may import from (its own included where listed).
ALLOWED: dict[str, frozenset[str]] = {
    "exceptions": frozenset(),
    "_protocol": frozenset({"_protocol", "exceptions"}),
    "_transport": frozenset({"_protocol", "_transport", "exceptions"}),
    "_core": frozenset({"_protocol", "_core", "exceptions"}),
    "_runtime": frozenset({"_protocol", "_transport", "_core", "_runtime", "exceptions"}),
    "_api": frozenset({"_protocol", "_transport", "_core", "_runtime", "_api", "exceptions"}),
    "public": frozenset(
        {"_protocol", "_transport", "_core", "_runtime", "_api", "public", "exceptions"}
    ),
    "cli": frozenset({"public", "exceptions", "_runtime", "cli"}),
    "dashboard": frozenset({"public", "exceptions", "_runtime", "_api", "dashboard"}),
    "library": frozenset({"public", "exceptions", "library"}),  # see _library_violation
}


def tier_of(module: str) -> str | None:
    """The tier of a module inside ember, or None for one the rule does not place."""
    parts = module.split(".")
    if parts[0] != "ember":
        return None
    if len(parts) == 1:
        return "public"
    head = parts[1]
    if head == "exceptions":
        return "exceptions"
    if head in ("_protocol", "_transport", "_core", "_runtime", "_api", "cli", "dashboard"):
        return head
    if head == "testing":  # drives processes, like the CLI
        return "cli"
    # Public faces of core features, as in Ray (``_raylet``: a private path Ray's docs use).
    if head in ("util", "runtime_env", "dag", "_raylet", "actor", "cloudpickle"):
        return "public"
    if parts[1:] == ["experimental", "tqdm_ray"]:  # a core feature at Ray's experimental path
        return "public"
    if head in LIBRARIES:
        return "library"
    return None


@dataclass(frozen=True)
class Import:
    target: str  # the ember module imported
    line: int
    text: str  # the statement, for the failure message


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    is_package: bool


def discover(root: Path = PACKAGE) -> list[Module]:
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = list(rel.parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        out.append(Module(".".join(parts), path, is_package))
    return out


def ember_imports(
    module: str, source: str, is_package: bool, known: frozenset[str] = frozenset()
) -> Iterator[Import]:
    """Every import of an ember module in ``source``. ``known`` names the modules that exist,
    so that ``from ember import exceptions`` counts as importing ``ember.exceptions``."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[: -(node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names = []
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                names.append(sub if sub in known or _looks_private(alias.name) else base)
        else:
            continue
        text = ast.get_source_segment(source, node) or ast.dump(node)
        for name in dict.fromkeys(names):
            if name == "ember" or name.startswith("ember."):
                yield Import(name, node.lineno, " ".join(text.split()))


def _looks_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def violations(mod: Module, source: str, known: frozenset[str]) -> list[str]:
    tier = tier_of(mod.name)
    if tier is None:
        return [f"{mod.name} is in no tier of the layering rule; place it in test_layering.py"]
    out = []
    for imp in ember_imports(mod.name, source, mod.is_package, known):
        target_tier = tier_of(imp.target)
        problem = None
        if target_tier is None:
            problem = f"{imp.target} is in no tier"
        elif target_tier not in ALLOWED[tier]:
            allowed = ", ".join(sorted(ALLOWED[tier])) or "nothing from ember"
            problem = f"tier {tier} may import only: {allowed}"
        elif tier == "library":
            problem = _library_violation(mod.name, imp.target)
        if problem:
            out.append(
                f"{mod.name} ({mod.path.name}:{imp.line}) imports {imp.target} "
                f"via `{imp.text}`: {problem}"
            )
    return out


def _library_violation(module: str, target: str) -> str | None:
    """A library may use its own modules freely, and of the rest only public names."""
    own = ".".join(module.split(".")[:2])
    if target == own or target.startswith(own + "."):
        return None
    if any(part.startswith("_") for part in target.split(".")):
        return "libraries may use only the public ember API, never an underscored module"
    return None


MODULES = discover()
KNOWN = frozenset(m.name for m in MODULES)


# ----------------------------------------------------------------------------- the rule


def test_source_tree_is_found() -> None:
    assert PACKAGE.is_dir(), PACKAGE
    for name in ("ember", "ember.exceptions", "ember._core.scheduler", "ember._protocol"):
        assert name in KNOWN, name


def test_every_module_is_in_a_tier() -> None:
    unplaced = [m.name for m in MODULES if tier_of(m.name) is None]
    assert not unplaced, f"modules outside every tier of the layering rule: {unplaced}"


@pytest.mark.parametrize("mod", MODULES, ids=[m.name for m in MODULES])
def test_module_respects_layering(mod: Module) -> None:
    problems = violations(mod, mod.path.read_text(encoding="utf-8"), KNOWN)
    assert not problems, "layering rule broken:\n  " + "\n  ".join(problems)


def test_exceptions_module_imports_nothing_from_ember() -> None:
    mod = next(m for m in MODULES if m.name == "ember.exceptions")
    found = list(ember_imports(mod.name, mod.path.read_text(encoding="utf-8"), False, KNOWN))
    assert found == [], found


def test_core_has_no_io() -> None:
    """_core is decision logic: no sockets, threads, processes or clocks."""
    banned = {
        "asyncio",
        "concurrent",
        "multiprocessing",
        "os",
        "select",
        "selectors",
        "signal",
        "socket",
        "subprocess",
        "threading",
        "time",
    }
    problems = []
    for mod in MODULES:
        if tier_of(mod.name) != "_core":
            continue
        for node in ast.walk(ast.parse(mod.path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                roots = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                roots = [node.module.split(".")[0]]
            else:
                continue
            problems += [f"{mod.name}:{node.lineno} imports {r}" for r in roots if r in banned]
    assert not problems, problems


# ----------------------------------------------------------------------------- the checker


def _check(name: str, source: str, is_package: bool = False) -> list[str]:
    known = KNOWN | {"ember.tune", "ember.tune.search", "ember.rllib", "ember.cli.main"}
    path = PACKAGE / (name.replace(".", "/") + ".py")
    return violations(Module(name, path, is_package), textwrap.dedent(source), known)


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("ember._core.x", "from ember._runtime import node"),
        ("ember._core.x", "import ember._transport.reactor"),
        ("ember._core.x", "from .. import _api"),
        ("ember._core.x", "from .._runtime.state import thing"),
        ("ember._core.x", "def f():\n    import ember._runtime.state\n"),
        ("ember._core.x", "from ember import init"),
        ("ember._protocol.x", "from ember._transport import rpc"),
        ("ember._protocol.x", "from ember._core import scheduler"),
        ("ember._transport.x", "from ember._core.resources import shape_of"),
        ("ember._transport.x", "from ember._runtime import worker"),
        ("ember._runtime.x", "from ember._api import session"),
        ("ember._runtime.x", "import ember"),
        ("ember._api.x", "from ember import init"),
        ("ember._api.x", "import ember.cli.main"),
        ("ember.exceptions", "from ember._protocol import ids"),
        ("ember.exceptions", "import ember"),
        ("ember", "from ember.tune import run"),
        ("ember.cli.main", "from ember._core import scheduler"),
        ("ember.cli.main", "from ember._api.session import init"),
        ("ember.tune", "from ember._api import session"),
        ("ember.tune.search", "from ember import _runtime"),
        ("ember.tune.search", "from ember._runtime.object_ref import ObjectRef"),
        ("ember.rllib", "import ember._core.retry as r"),
        ("ember.tune", "from ember.cli import main"),
        ("ember.dashboard.server", "from ember._core import scheduler"),
        ("ember._api.x", "from ember.dashboard import server"),
        ("ember.tune", "from ember.unknown import thing"),
        ("ember._core.x", "from ember._core.y import z\nimport typing\nfrom ember._api import q"),
    ],
)
def test_checker_catches_violations(name: str, source: str) -> None:
    problems = _check(name, source)
    assert len(problems) == 1, problems
    assert problems[0].startswith(name + " ")  # names the offending module ...
    assert "imports ember" in problems[0]  # ... and the import


@pytest.mark.parametrize(
    ("name", "source", "is_package"),
    [
        ("ember._core.x", "from ember._core.resources import Shape", False),
        ("ember._core.x", "from . import resources", False),
        ("ember._core", "from .resources import Shape", True),
        ("ember._core.x", "from ember._protocol import ids\nfrom ember import exceptions", False),
        ("ember._core.x", "from ember.exceptions import RayError", False),
        ("ember._protocol.x", "from ember._protocol.ids import ObjectID", False),
        ("ember._transport.x", "from ember._protocol.messages import Message", False),
        (
            "ember._runtime.x",
            "from ember._core import scheduler\nfrom ember._transport import rpc",
            False,
        ),
        ("ember._runtime.x", "from ember import exceptions as exc", False),
        (
            "ember._api.x",
            "from ember._runtime.state import runtime\nfrom ember._api import options",
            False,
        ),
        ("ember", "from ember._api.session import init\nfrom ember import exceptions", True),
        ("ember.exceptions", "from typing import Any\nimport os", False),
        ("ember.cli.main", "import ember\nfrom ember._runtime import launcher", False),
        ("ember.cli.main", "from ember import init, exceptions\nfrom ember.cli import x", False),
        ("ember.tune", "import ember\nfrom ember import remote, get", True),
        ("ember.tune.search", "from ember.tune import _trial\nfrom . import _util", False),
        ("ember.rllib", "from ember.tune import run\nfrom ember.exceptions import RayError", True),
        ("ember._core.x", "import numpy\nfrom collections import deque", False),
    ],
)
def test_checker_accepts_allowed_imports(name: str, source: str, is_package: bool) -> None:
    assert _check(name, source, is_package) == []


def test_checker_reports_unplaced_module() -> None:
    (problem,) = _check("ember.stray", "")
    assert "ember.stray is in no tier" in problem


def test_relative_imports_resolve() -> None:
    found = list(
        ember_imports("ember._runtime.node", "from ..._api import x\nfrom .state import y", False)
    )
    # "from ..._api" leaves the package: it is not an ember module at all.
    assert [i.target for i in found] == ["ember._runtime.state"]
    found = list(ember_imports("ember._runtime", "from .. import _core", True))
    assert [i.target for i in found] == ["ember._core"]


# ----------------------------------------------------------------------------- import ember

HEAVY = (
    "numpy",
    "psutil",
    "pandas",
    "scipy",
    "torch",
    "tensorflow",
    "jax",
    "pyarrow",
    "matplotlib",
    "sklearn",
    "redis",
    "grpc",
    "aiohttp",
    "IPython",
    "pydantic",
    "yaml",
    "requests",
)

_PROBE = r"""
import json, os, sys, threading, time

def children():
    if not os.path.isdir("/proc"):
        return None
    me, out = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == me:
            out.append(int(entry))
    return out

def os_threads():
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None

env = dict(os.environ)
modules = set(sys.modules)
threads, tasks, kids = threading.active_count(), os_threads(), children()
start = time.perf_counter()
import ember
elapsed = time.perf_counter() - start
print(json.dumps({
    "elapsed": elapsed,
    "new_modules": sorted(set(sys.modules) - modules),
    "threads": [threads, threading.active_count()],
    "thread_names": [t.name for t in threading.enumerate()],
    "os_threads": [tasks, os_threads()],
    "children": [kids, children()],
    "env_changed": sorted(k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k)),
}))
"""


@pytest.fixture(scope="module")
def fresh_import() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    for key in [k for k in env if k.startswith(("EMBER_", "RAY_"))]:
        del env[key]
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=str(SRC.parent),
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_ember_uses_this_source_tree() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import ember; print(ember.__file__)"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(SRC)},
        check=True,
    )
    assert Path(out.stdout.strip()).resolve() == (PACKAGE / "__init__.py").resolve()


def test_import_ember_starts_no_threads(fresh_import: dict) -> None:
    before, after = fresh_import["threads"]
    assert after == before, f"import ember started threads: {fresh_import['thread_names']}"
    before, after = fresh_import["os_threads"]
    assert after == before, "import ember started native threads"


def test_import_ember_starts_no_processes(fresh_import: dict) -> None:
    before, after = fresh_import["children"]
    if before is None:
        pytest.skip("no /proc to list child processes")
    assert after == before, f"import ember started processes: {after}"


def test_import_ember_sets_no_environment_variables(fresh_import: dict) -> None:
    assert fresh_import["env_changed"] == []


def test_import_ember_imports_no_heavy_library(fresh_import: dict) -> None:
    new = fresh_import["new_modules"]
    assert "ember" in new
    heavy = sorted({m for m in new if m.split(".")[0] in HEAVY})
    assert not heavy, f"import ember imported heavy or optional libraries: {heavy}"


def test_import_ember_is_quick(fresh_import: dict) -> None:
    assert fresh_import["elapsed"] < 5.0, f"import ember took {fresh_import['elapsed']:.2f} s"


# ----------------------------------------------------------------------------- the libraries

OPTIONAL = ("pandas", "tensorboardX", "optuna", "hyperopt", "IPython", "torch", "tensorflow")
FRAMEWORKS = ("tensorflow", "torch", "keras", "gymnasium")


@pytest.mark.parametrize(
    ("statement", "banned"),
    [
        ("import ember.tune", HEAVY + OPTIONAL),
        (
            "from ember.tune import Tuner, TuneConfig, RunConfig, grid_search, report",
            OPTIONAL,
        ),
        ("from ember.tune.search import Searcher, ConcurrencyLimiter, Repeater", OPTIONAL),
        ("from ember.tune.schedulers import ASHAScheduler, PopulationBasedTraining", OPTIONAL),
        ("import ember.experimental", FRAMEWORKS),
        ("import ember; ember.experimental", FRAMEWORKS),
        ("import ember.experimental.tf_utils, ember.experimental.torch_utils", FRAMEWORKS),
        ("import ember.rllib, ember.rllib.algorithms.ppo", FRAMEWORKS),
        ("import ember.rllib.algorithms.es", FRAMEWORKS),
    ],
)
def test_importing_a_library_loads_no_optional_library(
    statement: str, banned: tuple[str, ...]
) -> None:
    """The libraries' optional dependencies (Tune's loggers and searchers, TensorFlow,
    PyTorch, Gymnasium) load when a feature is used, not when it is imported."""
    code = f"import sys; before = set(sys.modules); {statement}; " + (
        "print(' '.join(sorted(m.split('.')[0] for m in set(sys.modules) - before)))"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert proc.returncode == 0, proc.stderr
    loaded = set(proc.stdout.split())
    assert not loaded & set(banned), f"{statement!r} loaded {sorted(loaded & set(banned))}"
