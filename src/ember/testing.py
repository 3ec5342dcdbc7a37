"""A cluster of real Ember nodes on this machine, for tests: ``ember.testing.Cluster``.

Shaped like Ray's ``ray.cluster_utils.Cluster``: a head (control store and node) and as many
nodes as you add, each a real node manager process with its own port, shared-memory folder and
resources, joined over TCP on loopback with the cluster's token. ``remove_node`` kills a node
and its workers at once, as a machine that dies; ``cut_off`` freezes them (SIGSTOP) so that
they stop answering without closing any connection, as a machine that drops off the network.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import time
from typing import Any

from ember._runtime.launch import cluster_files, dashboard, launcher


class ClusterNode:
    """A node of a test cluster."""

    def __init__(self, record: dict[str, Any], node: launcher.LocalNode) -> None:
        self.record = record
        self.node = node
        self.node_id: str = record["node_id"]
        self.pid: int = node.proc.pid
        self.address: str = record["tcp_address"]
        self.resources = dict(node.resources)

    @property
    def alive(self) -> bool:
        return self.node.proc.poll() is None

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)  # the node and the workers it forked share its group

    def __repr__(self) -> str:
        return f"ClusterNode({self.node_id[:12]}, pid={self.pid})"


class Cluster:
    """``Cluster(initialize_head=True, head_node_args={"num_cpus": 2})``, then ``add_node``,
    ``ember.init(address=cluster.address)``, and ``shutdown()`` at the end."""

    def __init__(
        self,
        initialize_head: bool = False,
        connect: bool = False,
        head_node_args: dict[str, Any] | None = None,
        *,
        node_timeout: float = 3.0,
        heartbeat_interval: float = 0.2,
        storage: str | None = None,
        control_store_timeout: float | None = None,
    ) -> None:
        self.token = cluster_files.new_token()
        self.node_timeout = node_timeout
        self.control_store_timeout = control_store_timeout
        self.heartbeat_interval = heartbeat_interval
        self.storage = storage
        self.head: ClusterNode | None = None
        self.control: launcher.ControlStoreProcess | None = None
        self.address = ""
        self.nodes: list[ClusterNode] = []
        # A test that dies without calling shutdown() must not leave nodes running.
        atexit.register(self.shutdown)
        if initialize_head:
            self.add_node(**(head_node_args or {}))
            if connect:
                self.connect()

    def add_node(
        self,
        num_cpus: float | None = 1,
        num_gpus: float | None = None,
        resources: dict[str, float] | None = None,
        object_store_memory: int | None = 256 << 20,
        _system_config: dict[str, Any] | None = None,
        labels: dict[str, str] | None = None,
        include_dashboard: bool = False,
        dashboard_port: int = 0,
    ) -> ClusterNode:
        """Start a node (the head, the first time) and wait until the cluster knows it.
        ``_system_config`` takes the settings ``ember.init`` does (``ref_grace_s``);
        ``labels`` are the node's, for ``label_selector`` (as ``ember start --labels``).
        The head serves the dashboard with ``include_dashboard`` (on a free port by default:
        ``cluster.dashboard_url``)."""
        head = self.head is None
        if include_dashboard and not head:
            raise ValueError("only the head serves the dashboard: include_dashboard is its")
        board = None
        if include_dashboard:
            board = dashboard.listen_socket("127.0.0.1", dashboard_port, "dashboard_port")
        record, node, store = launcher.start_cluster_node(
            address=None if head else self.address,
            token=self.token,
            host="127.0.0.1",
            resources=launcher.node_resources(num_cpus, num_gpus, resources, head=head),
            object_store_memory=object_store_memory,
            storage=self.storage,
            node_timeout=self.node_timeout,
            heartbeat_interval=self.heartbeat_interval,
            origin="testing",
            control_store_timeout=self.control_store_timeout,
            settings=_system_config,
            labels=labels,
            dashboard=board,
        )
        handle = ClusterNode(record, node)
        if head:
            self.head = handle
            self.control = store
            self.address = record["address"]
        self.nodes.append(handle)
        self.wait_for_nodes()
        return handle

    @property
    def dashboard_url(self) -> str:
        """The head's dashboard's login URL (with the token), or "" without one."""
        board = self.head.node.dashboard if self.head is not None else None
        return board.login_url if board is not None else ""

    def connect(self, **init_args: Any) -> Any:
        """Connect this driver (``ember.init``); returns what ``init`` does, a RayContext."""
        import ember

        return ember.init(address=self.address, **init_args)

    def remove_node(self, node: ClusterNode, allow_graceful: bool = False) -> None:
        """Kill a node and its workers (gracefully with ``allow_graceful``)."""
        if allow_graceful:
            node.node.stop()
        else:
            node._signal(signal.SIGKILL)
            node.node.proc.wait()
            if node.node.dashboard is not None:  # (it ends with its node: soon, not now)
                launcher.end_process(node.node.dashboard.proc, 5.0)
        # A killed node cleans nothing up: its shared memory and session folder are ours to
        # remove.
        node.node.remove_files()
        cluster_files.remove_record(node.node_id)
        if node in self.nodes:
            self.nodes.remove(node)

    def cut_off(self, node: ClusterNode) -> None:
        """Freeze a node and its workers: it stops answering but closes nothing."""
        node._signal(signal.SIGSTOP)

    def restore(self, node: ClusterNode) -> None:
        node._signal(signal.SIGCONT)

    def kill_control_store(self) -> None:
        assert self.control is not None
        self.control.proc.kill()
        self.control.proc.wait()

    def restart_control_store(self) -> None:
        """Start the control store again on the same port (state comes back from Redis)."""
        port = int(self.address.rsplit(":", 1)[1])
        assert self.control is not None
        self.control = launcher.spawn_control_store(
            log_dir=os.path.dirname(self.control.log),
            host="127.0.0.1",
            port=port,
            token=self.token,
            storage=self.storage,
            node_timeout=self.node_timeout,
            heartbeat_interval=self.heartbeat_interval,
            fresh=False,
        )

    def list_nodes(self) -> list[dict[str, Any]]:
        from ember._runtime.launch import admin

        return admin.nodes(self.address, self.token)

    def wait_for_nodes(self, timeout: float = 30.0) -> None:
        """Wait until every node started here is alive in the control store's table."""
        want = {n.node_id for n in self.nodes}
        deadline = time.monotonic() + timeout
        while True:
            alive = {n["node_id"].hex() for n in self.list_nodes() if n["alive"]}
            if want <= alive:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"nodes {sorted(want - alive)} did not join within {timeout} s")
            time.sleep(0.02)

    def shutdown(self) -> None:
        import ember

        atexit.unregister(self.shutdown)
        if ember.is_initialized():
            ember.shutdown()
        for node in list(self.nodes):
            node._signal(signal.SIGCONT)
            node.node.stop()
            node.node.remove_files()
            cluster_files.remove_record(node.node_id)
        self.nodes.clear()
        if self.control is not None:
            self.control.proc.terminate()
            try:
                self.control.proc.wait(timeout=5)
            except Exception:
                self.control.proc.kill()
                self.control.proc.wait()
            self.control = None

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return json.dumps({"address": self.address, "nodes": [n.node_id for n in self.nodes]})


class BrowserUnavailable(RuntimeError):
    """No headless browser can be started here; the message says what is missing."""


_CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these, chromium keeps connecting to Google's hosts, which a closed network
    # refuses (and a CI runner may not have).
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


@contextlib.contextmanager
def headless_chromium(
    profile_dir: str,
    window: tuple[int, int] = (1400, 1000),
    page_load_timeout: float = 60.0,
    flags: tuple[str, ...] = (),
) -> Any:
    """A Selenium driver of a headless chromium (Debian's ``chromium`` and
    ``chromium-driver``) with a fresh profile in ``profile_dir`` (and chromium's ``flags``
    besides the headless ones), quit on leaving; for tests, benchmarks and screenshots of the
    dashboard. ``BrowserUnavailable`` if none can start."""
    import shutil

    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise BrowserUnavailable("selenium is not installed (pip install -e '.[test]')") from None
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        raise BrowserUnavailable(
            "no chromium or chromedriver (apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*_CHROMIUM_FLAGS, *flags, f"--window-size={window[0]},{window[1]}"):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    try:
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    except WebDriverException as e:
        raise BrowserUnavailable(f"chromium could not be started headless: {e.msg}") from None
    driver.set_page_load_timeout(page_load_timeout)
    try:
        yield driver
    finally:
        driver.quit()
