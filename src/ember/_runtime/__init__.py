"""One module per process role (driver client, node manager, worker, control store) and the
object store they share. They carry out the decisions of ``ember._core``."""
