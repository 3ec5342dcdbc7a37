"""The ``ember`` command: start, stop and inspect the nodes of a cluster."""
