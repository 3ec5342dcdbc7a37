"""Frozen records that cost little to define: the machines' events and actions, and (through
``compile_fields``) the messages.

``dataclass`` costs about half a millisecond per class at import, and the node manager defines
some fifty events and actions on its start-up path (a process start is a quarter of a second
here, so that is a tenth of it). ``record`` makes a slotted class whose constructor is compiled
from its fields the first time one is built, with a dataclass's equality, hash and repr. Type
checkers see a frozen dataclass; the frozenness is checked statically only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform as dataclass_transform
else:

    def dataclass_transform(**_: Any) -> Callable[[Any], Any]:
        return lambda decorator: decorator


_T = TypeVar("_T")


class Record:
    __slots__: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _compile_init(type(self))(self, *args, **kwargs)

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, n) for n in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__name__}({fields})"


@dataclass_transform(frozen_default=True)
def record(cls: type[_T]) -> type[_T]:
    """Make ``cls`` (fields as annotations, defaults as class attributes) a ``Record``."""
    names = tuple(cls.__dict__.get("__annotations__", {}))
    defaults = {n: cls.__dict__[n] for n in names if n in cls.__dict__}
    namespace = {
        k: v
        for k, v in cls.__dict__.items()
        if k not in defaults and k not in ("__dict__", "__weakref__")
    }
    namespace.update(__slots__=names, __match_args__=names, _defaults=defaults)
    bases = tuple(b for b in cls.__bases__ if b is not object) or (Record,)
    if not any(issubclass(b, Record) for b in bases):
        bases = (*bases, Record)
    made = type(cls.__name__, bases, namespace)
    made.__qualname__ = cls.__qualname__
    return made


def compile_fields(cls: Any, source: str, **scope: Any) -> dict[str, Any]:
    """Run ``source``, whose parameters are the class's fields (``, a, b=_d_b`` for
    ``{params}``) and whose ``{body}`` sets them on ``self`` (through ``_r_<name>`` when
    ``scope`` has that). ``cls`` has ``__slots__`` (its fields) and ``_defaults``."""
    names = cls.__slots__
    params = "".join(f", {n}=_d_{n}" if n in cls._defaults else f", {n}" for n in names)
    body = "".join(
        f"    self.{n} = _r_{n}({n})\n" if f"_r_{n}" in scope else f"    self.{n} = {n}\n"
        for n in names
    )
    scope.update({f"_d_{n}": v for n, v in cls._defaults.items()})
    exec(source.format(params=params, body=body), scope)  # a fixed template over the fields
    return scope


def _compile_init(cls: type[Record]) -> Callable[..., None]:
    init: Callable[..., None] = compile_fields(
        cls, "def __init__(self{params}):\n{body}    pass\n"
    )["__init__"]
    cls.__init__ = init  # type: ignore[method-assign]
    return init
