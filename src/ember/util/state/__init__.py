"""Ray's state API (``ray.util.state``): what a cluster runs, and its logs."""

from ember.util.state.logs import get_log, list_logs

__all__ = ["get_log", "list_logs"]
