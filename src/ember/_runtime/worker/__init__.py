"""A worker process: runs the tasks pushed to it, or hosts one actor."""
