"""Get and set the weights of a TensorFlow model by name, to pass them between actors.

In graph mode (``tf.compat.v1``, the way Ray's 2017 documentation uses it) the variables are
found by walking the graph backwards from the output tensor, through data and control inputs,
to the variable ops it depends on. Setting them feeds placeholders into assign ops built once
here: calling ``variable.assign(value)`` each time would add nodes to the graph on every call,
and the graph would grow without bound. In eager mode (TensorFlow 2's default) there is no
graph to walk, so the caller passes the model (a ``tf.Module`` or a Keras model or layer) or
its variables, and values are assigned directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ember.experimental._weights import Weights

# The op types that hold a variable's state: reference variables and resource handles.
_VARIABLE_OPS = frozenset({"Variable", "VariableV2", "VarHandleOp"})


def _import_tensorflow() -> Any:
    try:
        import tensorflow as tf
    except ImportError as error:
        raise ImportError(
            "TensorFlowVariables needs TensorFlow, which is not installed: "
            "pip install 'ember[tensorflow]'"
        ) from error
    return tf


class TensorFlowVariables(Weights):
    """The variables an output depends on, with their values as numpy arrays by name.

    ``output`` is a tensor or op (or a list of them) of a graph, with ``sess`` the session
    that runs it (or one given later with ``set_session``); or, in eager mode, a ``tf.Module``,
    a Keras model or layer, or a list of variables. ``input_variables`` adds variables the
    walk would not find. Names are the variables' op names in graph mode, and in eager mode
    their Keras paths or names (``kernel:0`` becomes ``kernel``; repeats get ``_1``, ``_2``).
    """

    def __init__(
        self, output: Any, sess: Any = None, input_variables: Sequence[Any] | None = None
    ) -> None:
        tf = _import_tensorflow()
        outputs = list(output) if isinstance(output, (list, tuple)) else [output]
        extra = list(input_variables or [])
        graphs = {id(g): g for g in map(_graph_of, outputs + extra) if g is not None}
        if len(graphs) > 1:
            raise ValueError(
                "TensorFlowVariables: the outputs and input_variables belong to different "
                "graphs; pass objects of one graph"
            )
        self._graph = next(iter(graphs.values()), None)
        self.sess: Any = None
        if sess is not None:
            self.set_session(sess)
        if self._graph is None:
            variables = _eager_variables(tf, outputs + extra)
            names = _unique([_eager_name(v) for v in variables])
        else:
            variables = _graph_variables(tf, self._graph, outputs, extra)
            names = [v.op.name for v in variables]
        if not variables:
            where = "the output depends on" if self._graph is not None else "in the model"
            raise ValueError(
                f"TensorFlowVariables found no variables {where}: pass the loss or output "
                "that depends on them (graph mode), a built model, or input_variables=[...]"
            )
        shapes = [tf.TensorShape(v.shape) for v in variables]
        undefined = [
            n for n, shape in zip(names, shapes, strict=True) if not shape.is_fully_defined()
        ]
        if undefined:
            raise ValueError(f"TensorFlowVariables: variables of unknown shape: {undefined}")
        self.variables: dict[str, Any] = dict(zip(names, variables, strict=True))
        dtypes = [tf.as_dtype(v.dtype).base_dtype.as_numpy_dtype for v in variables]
        super().__init__(names, [tuple(shape.as_list()) for shape in shapes], dtypes)
        if self._graph is not None:
            with self._graph.as_default():
                self.placeholders = {
                    name: tf.compat.v1.placeholder(
                        tf.as_dtype(v.dtype).base_dtype, v.shape, name=f"{name}_in"
                    )
                    for name, v in self.variables.items()
                }
                self._assign = tf.group(
                    *[v.assign(self.placeholders[n]) for n, v in self.variables.items()]
                )

    def set_session(self, sess: Any) -> None:
        """Use ``sess`` (a ``tf.compat.v1.Session`` of the variables' graph) from now on."""
        if self._graph is None:
            raise ValueError(
                "TensorFlowVariables: eager variables take no session; sessions belong to "
                "tf.compat.v1 graphs"
            )
        if sess.graph is not self._graph:
            raise ValueError(
                "TensorFlowVariables.set_session: the session runs another graph than the "
                "variables'; create it inside `with graph.as_default()` or with graph=..."
            )
        self.sess = sess

    def _session(self) -> Any:
        if self.sess is None:
            raise RuntimeError(
                "TensorFlowVariables has no session: pass sess= or call set_session(sess)"
            )
        return self.sess

    def _read(self) -> list[npt.NDArray[Any]]:
        if self._graph is not None:
            return list(self._session().run(list(self.variables.values())))
        return [np.array(v.numpy()) for v in self.variables.values()]

    def _write(self, values: list[npt.NDArray[Any]]) -> None:
        if self._graph is not None:
            feed = dict(zip(self.placeholders.values(), values, strict=True))
            self._session().run(self._assign, feed_dict=feed)
            return
        for variable, value in zip(self.variables.values(), values, strict=True):
            variable.assign(value)


def _graph_of(obj: Any) -> Any:
    """The graph ``obj`` belongs to, or None for eager objects (models, eager variables)."""
    graph = getattr(obj, "graph", None)  # eager tensors and variables raise AttributeError
    return graph if graph is not None and hasattr(graph, "get_operations") else None


def _graph_variables(tf: Any, graph: Any, outputs: list[Any], extra: list[Any]) -> list[Any]:
    """The graph's variables that ``outputs`` depend on, in creation order, then ``extra``."""
    pending = [getattr(o, "op", o) for o in outputs]
    seen = {id(op) for op in pending}
    found: set[str] = set()
    while pending:
        op = pending.pop()
        if op.type in _VARIABLE_OPS:
            found.add(op.name)
        for nxt in [t.op for t in op.inputs] + list(op.control_inputs):
            if id(nxt) not in seen:  # control inputs can form cycles
                seen.add(id(nxt))
                pending.append(nxt)
    known = graph.get_collection(tf.compat.v1.GraphKeys.GLOBAL_VARIABLES)
    chosen = {v.op.name: v for v in known if v.op.name in found}
    for variable in extra:
        chosen.setdefault(variable.op.name, variable)
    return list(chosen.values())


def _eager_variables(tf: Any, objects: list[Any]) -> list[Any]:
    variables: dict[int, Any] = {}
    for obj in objects:
        if isinstance(obj, tf.Tensor):
            raise TypeError(
                "TensorFlowVariables: an eager tensor does not record the variables it came "
                "from; pass the model (tf.Module or Keras model) or a list of its variables, "
                "or build a tf.compat.v1 graph and pass its output with the session"
            )
        if hasattr(obj, "assign") and hasattr(obj, "numpy"):
            members = [obj]
        elif hasattr(obj, "variables"):
            members = list(obj.variables)
        else:
            raise TypeError(
                f"TensorFlowVariables takes a graph tensor or op, a tf.Module or Keras model, "
                f"or variables, not {type(obj).__name__}"
            )
        for variable in members:
            variables.setdefault(id(variable), variable)
    return list(variables.values())


def _eager_name(variable: Any) -> str:
    name = getattr(variable, "path", None) or variable.name
    return str(name).removesuffix(":0")


def _unique(names: list[str]) -> list[str]:
    """Tell repeated names apart in order, as TensorFlow does for op names."""
    taken: set[str] = set()
    out = []
    for name in names:
        candidate, n = name, 0
        while candidate in taken:
            n += 1
            candidate = f"{name}_{n}"
        taken.add(candidate)
        out.append(candidate)
    return out
