"""``ray.dag.input_node``: the module path Ray's documentation imports ``InputNode`` from."""

from ember._api.dag import DAGInputData, InputAttributeNode, InputNode

__all__ = ["DAGInputData", "InputAttributeNode", "InputNode"]
