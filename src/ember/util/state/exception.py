"""The state API's errors, at Ray's names (``ray.util.state.exception``)."""


class RayStateApiException(Exception):
    """A state query failed: the cluster refused it (an unknown filter column, say) or some
    of its sources did not answer."""


class ServerUnavailable(RayStateApiException, ConnectionError):
    """Nothing at the address answers as an Ember cluster (also a ``ConnectionError``, as
    connecting failed)."""
