"""``ray.dag.output_node``: the module path Ray's documentation imports ``MultiOutputNode``
from."""

from ember._api.dag import MultiOutputNode

__all__ = ["MultiOutputNode"]
