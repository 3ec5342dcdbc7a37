"""The control store: the cluster's tables (nodes, jobs, functions, actors, names), in
memory or in Redis."""
