"""Starting the dashboard (``python -m ember.dashboard``) beside a head node.

The starter binds the dashboard's socket itself and hands it to the new process: the URL is
known at once (and a port in use is refused, or passed over as Ray's ``init()`` does) without
waiting for the dashboard to start, so ``init()`` is no slower with it. The process runs in
its own session, so its crash touches nothing else, and it ends with the node it watches.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import subprocess
from dataclasses import dataclass

from ember._runtime.launch.launcher import _spawn
from ember._runtime.launch.process_config import DashboardConfig

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8265  # Ray's
_FALLBACK_PORTS = 100  # how far past the default port init() looks for a free one


@dataclass
class DashboardProcess:
    proc: subprocess.Popen[bytes]
    url: str  # http://HOST:PORT
    login_token: str | None  # what a browser must show (None: it may look without one)

    @property
    def address(self) -> str:
        """HOST:PORT, Ray's ``dashboard_url``."""
        return self.url.removeprefix("http://")

    @property
    def login_url(self) -> str:
        """The URL to open: with the token, which the page keeps as a cookie."""
        return f"{self.url}/?token={self.login_token}" if self.login_token else self.url


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen_socket(host: str, port: int | None, flag: str) -> socket.socket:
    """A socket listening on ``host:port`` for the dashboard. ``port`` None: Ray's default
    port, or the next free one after it, as Ray's ``init()`` does; a port given (0: any free
    one) that cannot be had is an error naming ``flag``, the option that chose it."""
    if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
        raise ValueError(f"{flag} must be a port number, got {port!r}")
    if port is not None and not 0 <= port <= 65535:
        raise ValueError(f"{flag} must be a port number from 0 to 65535, got {port}")
    try:
        family = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][0]
    except (socket.gaierror, UnicodeError) as e:
        raise ValueError(
            f"the dashboard's host {host!r} is not an address of this host: {e}"
        ) from None
    ports = range(DEFAULT_PORT, DEFAULT_PORT + _FALLBACK_PORTS) if port is None else [port]
    for candidate in ports:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, candidate))
        except OSError as e:
            sock.close()
            if port is None and e.errno == errno.EADDRINUSE:
                continue
            advice = {
                errno.EADDRINUSE: f"choose another {flag}, or stop what listens there",
                errno.EACCES: f"ports below 1024 need root: choose another {flag}",
            }.get(e.errno or 0, "give an address of this host for the dashboard")
            raise ValueError(
                f"the dashboard cannot listen on {host}:{candidate} ({e.strerror}): {advice}"
            ) from None
        sock.listen(128)
        return sock
    raise ValueError(
        f"the dashboard found no free port on {host} from {DEFAULT_PORT} to "
        f"{DEFAULT_PORT + _FALLBACK_PORTS - 1}: choose one with {flag}"
    )


def spawn_dashboard(
    sock: socket.socket,
    *,
    control_address: str,
    token: str | None,
    login_token: str | None,
    owner_pid: int,
    log_dir: str,
    shown_host: str,
) -> DashboardProcess:
    """Start the dashboard on ``sock`` (closed here: it is the dashboard's now), reading the
    control store at ``control_address`` with ``token``; browsers must show ``login_token``.
    It ends when the process ``owner_pid`` (the head's node) does. ``shown_host``: the host
    in the URL, for a socket bound to every address."""
    bound = sock.getsockname()[0]
    host = shown_host if bound in ("0.0.0.0", "::") else bound
    url = f"http://{f'[{host}]' if ':' in host else host}:{sock.getsockname()[1]}"
    config = DashboardConfig(control_address, token, login_token, sock.fileno(), url, owner_pid)
    try:
        proc, _ = _spawn(
            "ember.dashboard",
            config,
            os.path.join(log_dir, "dashboard.log"),
            ready=False,
            keep_fds=(sock.fileno(),),
        )
    finally:
        sock.close()
    return DashboardProcess(proc, url, login_token)
