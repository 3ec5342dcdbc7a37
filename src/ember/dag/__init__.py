"""Lazy task graphs and compiled graphs, as ``ray.dag``.

``f.bind(...)``, ``Actor.bind(...)`` and ``actor.method.bind(...)`` build a graph that
``node.execute(...)`` submits; ``node.experimental_compile()`` turns a graph of actor calls
into a ``CompiledDAG`` that runs over shared-memory channels.
"""

from ember._api.compiled_dag import CompiledDAG, CompiledDAGRef, DAGContext
from ember._api.dag import (
    ClassMethodNode,
    ClassNode,
    DAGInputData,
    DAGNode,
    FunctionNode,
    InputAttributeNode,
    InputNode,
    MultiOutputNode,
)

__all__ = [
    "ClassMethodNode",
    "ClassNode",
    "CompiledDAG",
    "CompiledDAGRef",
    "DAGContext",
    "DAGInputData",
    "DAGNode",
    "FunctionNode",
    "InputAttributeNode",
    "InputNode",
    "MultiOutputNode",
]
