"""The node manager: one per machine, one reactor thread; it leases workers, indexes the
shared-memory objects, runs actors' lives and talks to the rest of the cluster."""
