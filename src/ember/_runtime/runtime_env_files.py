"""The files of runtime envs: a caller packs a local folder into a zip named by its content
and uploads it once to the control store; a worker unpacks it into its node's cache once;
a pip env's packages go into a virtual environment cached per node by its requirement list.

Everything cached lives under the session's ``runtime_resources/`` folder, so it goes with
the node. Concurrent workers of one node may set up the same env at once: a package is
unpacked into a temporary folder and renamed into place (the first rename wins), and a
virtual environment is built under an exclusive ``flock`` and marked complete last.
"""

from __future__ import annotations

import fcntl
import fnmatch
import hashlib
import importlib.util
import io
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from collections.abc import Callable, Iterator

from ember import exceptions as exc
from ember._core import runtime_env as renv
from ember._runtime.launch.process_config import PACKAGE_PARENT

# As in Ray, a package must fit one message to the control store (Ray's gRPC limit).
MAX_PACKAGE_BYTES = 512 * 1024 * 1024
PACKAGE_PREFIX = renv.URI_PREFIX + "_ember_pkg_"
# Ignore files read at a working_dir's top, as Ray reads them, besides ``excludes``.
IGNORE_FILES = (".gitignore", ".rayignore")
_READY = ".ember-ready"


# ---------------------------------------------------------------------------- the caller's side


def pack(path: str, excludes: list[str], keep_name: bool) -> tuple[str, bytes]:
    """A local folder, .zip or .whl as ``(uri, zip bytes)``. A folder is zipped with
    ``excludes`` (and its ignore files) left out, under its own name when ``keep_name`` (a
    package of ``py_modules``); the uri names the content, so equal content is one upload."""
    path = os.path.abspath(os.path.expanduser(path))
    if os.path.isfile(path) and path.endswith((".zip", ".whl")):
        with open(path, "rb") as f:
            data = f.read()
    elif os.path.isdir(path):
        data = _zip_folder(path, excludes, os.path.basename(path) if keep_name else "")
    else:
        raise ValueError(f"{path} is not a valid path: give an existing folder, .zip or .whl.")
    if len(data) >= MAX_PACKAGE_BYTES:
        raise ValueError(
            f"the package of {path} is {len(data) / 2**20:.1f} MiB, over the limit of "
            f"{MAX_PACKAGE_BYTES // 2**20} MiB: leave large files out with the runtime env's "
            "'excludes' or a .gitignore."
        )
    return f"{PACKAGE_PREFIX}{hashlib.blake2b(data, digest_size=16).hexdigest()}.zip", data


def _zip_folder(root: str, excludes: list[str], prefix: str) -> bytes:
    patterns = list(excludes)
    for name in IGNORE_FILES:
        ignore = os.path.join(root, name)
        if os.path.isfile(ignore):
            with open(ignore) as f:
                patterns += [ln.strip() for ln in f if ln.strip() and not ln.startswith("#")]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in _files(root, patterns):
            # A fixed date: the same files make the same bytes, so the same uri.
            info = zipfile.ZipInfo(os.path.join(prefix, rel), date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (os.stat(os.path.join(root, rel)).st_mode & 0o777) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(os.path.join(root, rel), "rb") as f:
                zf.writestr(info, f.read())
    return buf.getvalue()


def _files(root: str, patterns: list[str]) -> Iterator[str]:
    """The files under ``root`` (relative paths, sorted) that no pattern excludes."""
    for folder, dirs, files in os.walk(root):
        rel_folder = os.path.relpath(folder, root)
        rel_folder = "" if rel_folder == "." else rel_folder
        dirs[:] = sorted(
            d for d in dirs if not excluded(os.path.join(rel_folder, d), True, patterns)
        )
        for name in sorted(files):
            rel = os.path.join(rel_folder, name)
            if not excluded(rel, False, patterns):
                yield rel


def excluded(rel: str, is_dir: bool, patterns: list[str]) -> bool:
    """Does a gitignore-style pattern leave out this path? (``/x`` anchors to the top, ``x/``
    matches folders only, a pattern without a slash matches a name at any depth.)"""
    parts = rel.split(os.sep)
    for pattern in patterns:
        dir_only = pattern.endswith("/")
        pattern = pattern.rstrip("/")
        if not pattern or (dir_only and not is_dir):
            continue
        if "/" in pattern.strip("/") or pattern.startswith("/"):
            if fnmatch.fnmatch(rel, pattern.lstrip("/")):
                return True
        elif fnmatch.fnmatch(parts[-1], pattern):
            return True
    return False


# ---------------------------------------------------------------------------- the worker's side


def cache_root(session_dir: str) -> str:
    return os.path.join(session_dir, "runtime_resources")


def unpack(uri: str, fetch: Callable[[bytes], bytes], session_dir: str) -> str:
    """The folder where the package ``uri`` is unpacked on this node (fetched from the
    control store the first time)."""
    name = uri[len(renv.URI_PREFIX) :].removesuffix(".zip")
    dest = os.path.join(cache_root(session_dir), "packages", name)
    if os.path.isdir(dest):
        return dest
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    data = fetch(uri.encode())
    if not data:
        raise exc.RuntimeEnvSetupError(f"the package {uri} is not in the control store.")
    tmp = tempfile.mkdtemp(prefix=f".{name}-", dir=os.path.dirname(dest))
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            zf.extractall(tmp)
            for info in zf.infolist():  # (extractall drops the permission bits)
                mode = info.external_attr >> 16
                if mode and not info.is_dir():
                    os.chmod(os.path.join(tmp, info.filename), mode & 0o777)
        os.rename(tmp, dest)
    except OSError:
        if not os.path.isdir(dest):  # else another worker of this node got there first
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def ensure_venv(env: dict[str, object], session_dir: str, timeout: float | None) -> str:
    """The python of the virtual environment with ``env``'s pip packages, made once per node
    and requirement list (``--system-site-packages``, so Ember and its dependencies stay
    importable). Raises RuntimeEnvSetupError with pip's own output when it fails."""
    pip = env["pip"]
    assert isinstance(pip, dict)
    folder = os.path.join(cache_root(session_dir), "pip", renv.pip_key(env))
    python = os.path.join(folder, "bin", "python")
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    with open(folder + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(os.path.join(folder, _READY)):
            return python
        shutil.rmtree(folder, ignore_errors=True)  # (a try that failed or was killed)
        # The venv runs this interpreter's pip when it has one (it sees the system's
        # packages), which saves seconds of installing pip into each venv.
        own_pip = ["--without-pip"] if importlib.util.find_spec("pip") else []
        _run([sys.executable, "-m", "venv", "--system-site-packages", *own_pip, folder], timeout)
        # A requirements file, as Ray writes: its lines may be pip options (--find-links).
        requirements = os.path.join(folder, "requirements.txt")
        with open(requirements, "w") as f:
            f.writelines(line + "\n" for line in pip["packages"])
        pip_cmd = [python, "-m", "pip", "--disable-pip-version-check", "--no-input"]
        if pip.get("pip_version"):
            _run([*pip_cmd, "install", f"pip{pip['pip_version']}"], timeout)
        _run([*pip_cmd, "install", "-r", requirements], timeout)
        if pip.get("pip_check"):
            _run([*pip_cmd, "check"], timeout)
        open(os.path.join(folder, _READY), "w").close()
    return python


def _run(cmd: list[str], timeout: float | None) -> None:
    try:
        done = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            text=True,
            preexec_fn=_die_with_parent,
        )
    except subprocess.TimeoutExpired as e:
        raise exc.RuntimeEnvSetupError(
            f"`{' '.join(cmd)}` did not finish within setup_timeout_seconds={timeout:g}:\n"
            f"{_text(e.output)}"
        ) from None
    if done.returncode != 0:
        raise exc.RuntimeEnvSetupError(
            f"`{' '.join(cmd)}` failed (exit code {done.returncode}):\n{done.stdout}"
        )


def _die_with_parent() -> None:
    """In pip's process: be killed with the worker that waits for it (a node that stops
    kills its workers, and must leave no pip behind)."""
    if sys.platform == "linux":
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _text(output: bytes | str | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def worker_pythonpath(current: str) -> str:
    """PYTHONPATH for a worker started from a venv's python: the folder Ember is imported
    from goes first unless it is a site-packages folder (which the venv sees anyway, after
    its own packages, which must win)."""
    paths = sysconfig.get_paths()
    site = {os.path.abspath(paths["purelib"]), os.path.abspath(paths["platlib"])}
    if PACKAGE_PARENT in site:
        return current
    return os.pathsep.join([PACKAGE_PARENT, *([current] if current else [])])
