"""Starting and finding processes: spawning nodes and control stores, their settings, the
records of a host's clusters, and the admin calls the CLI makes."""
