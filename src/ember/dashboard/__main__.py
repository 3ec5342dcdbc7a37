"""``python -m ember.dashboard``: the dashboard process (see the package's docstring).

Its settings come on stdin (they may hold the cluster's token), its socket already bound
by its starter. Until the first connection it only samples the cluster, waiting on the
socket between samples; then it loads the web server, which takes that connection.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import signal
import socket
import sys

import psutil

from ember._runtime import proctitle
from ember._runtime.launch.process_config import DashboardConfig, read_config
from ember.dashboard import samples
from ember.dashboard.source import StateSource

log = logging.getLogger("ember.dashboard")


def _alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def main() -> None:
    proctitle.show("ember::dashboard")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    config = read_config(DashboardConfig)
    if config.token is not None:  # (where the state API looks for a cluster's token)
        os.environ["EMBER_TOKEN"] = config.token
    sock = socket.socket(fileno=config.listen_fd)
    source = StateSource(config.control_address, config.token)
    history = samples.History()
    log.info("serving the dashboard at %s", config.url)
    wait = 0.0  # (the first sample at once)
    while not select.select([sock], [], [], wait)[0]:
        wait = samples.SAMPLE_SECONDS
        if not _alive(config.owner_pid):
            log.info("the node is gone: the dashboard ends")
            return
        try:
            source.take_sample(history, watched=False)
        except Exception as e:  # (it goes on: the cluster may answer next time)
            log.warning("cannot sample the cluster's state: %s", e)
    from ember.dashboard import server

    board = server.Dashboard(source, history, config.login_token, lambda: _alive(config.owner_pid))
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # (the server's loop takes it from here)
    asyncio.run(server.serve(board, sock))


if __name__ == "__main__":
    main()
