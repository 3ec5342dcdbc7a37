"""How a message is a class, and how it travels: the machinery behind ``messages.py``.

A message is a small slotted class that type checkers see as a keyword-only, frozen dataclass.
On the wire it is a msgpack array whose first element is the message's code and the rest its
fields in order, so adding a message means adding a class to ``messages.py`` and nothing else.
The messages themselves are all defined there; this module knows none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar, TypeVar

from ember._protocol.records import compile_fields, dataclass_transform

_T = TypeVar("_T")
_M = TypeVar("_M", bound="Message")
_R = TypeVar("_R", bound=tuple[Any, ...])
_BY_CODE: dict[int, type[Message]] = {}
_DECODERS: dict[int, Callable[..., Message]] = {}


class Message:
    """The base of every message. A class's ``__init__``, ``encode`` and decoder are compiled
    from its fields the first time they are used (most processes use few of the messages), so
    importing ``messages.py`` costs little more than defining its classes."""

    __slots__: ClassVar[tuple[str, ...]] = ()
    CODE: ClassVar[int]
    _defaults: ClassVar[dict[str, Any]]
    # Fields that hold records: decode builds each field's value with its function.
    _records: ClassVar[dict[str, Callable[[Any], Any]]] = {}

    def __init__(self, **fields: Any) -> None:
        _compile_methods(type(self)).__init__(self, **fields)

    def encode(self) -> list[Any]:
        return _compile_methods(type(self)).encode(self)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Message)
            and type(other) is type(self)
            and other.encode() == self.encode()
        )

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__name__}({fields})"


@dataclass_transform(kw_only_default=True, frozen_default=True)
def message(code: int, *, frozen: bool = True) -> Callable[[type[_T]], type[_T]]:
    """Turn an annotated class into a slotted message.

    A small stand-in for ``dataclass``, which costs about a millisecond per class at import:
    fifty messages would add that to every process start. ``frozen`` is checked statically
    only: a runtime guard would cost every construction.
    """

    def wrap(cls: type[_T]) -> type[_T]:
        names = [n for n in cls.__dict__.get("__annotations__", {}) if n != "CODE"]
        defaults = {n: cls.__dict__[n] for n in names if n in cls.__dict__}
        namespace = {k: v for k, v in cls.__dict__.items() if k not in defaults and k != "__dict__"}
        namespace.update(__slots__=tuple(names), CODE=code, _defaults=defaults)
        new = type(cls.__name__, cls.__bases__, namespace)
        new.__qualname__ = cls.__qualname__
        if code in _BY_CODE:
            raise RuntimeError(f"message code {code} used twice")
        _BY_CODE[code] = new
        return new

    return wrap


def _compile_methods(cls: type[Message]) -> type[Message]:
    fields = "".join(f", self.{n}" for n in cls.__slots__)
    made = compile_fields(
        cls,
        "def __init__(self, *{params}):\n{body}    pass\n"
        f"def encode(self):\n    return [{cls.CODE}{fields}]\n",
    )
    cls.__init__ = made["__init__"]  # type: ignore[method-assign]
    cls.encode = made["encode"]  # type: ignore[method-assign]
    return cls


def builder(cls: type[_M]) -> type[_M]:
    """``cls``'s constructor as a plain function, for the messages sent once per task: CPython
    (3.11) passes keywords to a class as a dict it builds per call (0.4 us for PushTask's 14
    fields, as much as the rest of its construction), to a function as they are. Typed as the
    class, so that calls are checked as its constructor's are; use it only to construct."""
    source = "def f(*{params}):\n    self = _new(_cls)\n{body}    return self\n"
    make: type[_M] = compile_fields(cls, source, _new=object.__new__, _cls=cls)["f"]
    return make


def replace(msg: _M, **changes: Any) -> _M:
    """A copy of ``msg`` with some fields changed (a request passed on with a rid of its own)."""
    return type(msg)(**{n: getattr(msg, n) for n in msg.__slots__} | changes)


def _decoder(code: Any) -> Callable[..., Message]:
    """The positional builder ``decode`` uses, independent of the constructor's signature:
    ``f(code, *fields)``, so that decoding copies no list."""
    cls = _BY_CODE.get(code) if isinstance(code, int) else None
    if cls is None:
        raise UnknownMessage(f"unknown message code {code!r}")
    source = "def f(_code{params}):\n    self = _new(_cls)\n{body}    return self\n"
    records = {f"_r_{n}": f for n, f in cls._records.items()}
    make: Callable[..., Message] = compile_fields(
        cls, source, _new=object.__new__, _cls=cls, **records
    )["f"]
    _DECODERS[code] = make
    return make


class UnknownMessage(ValueError):
    """A peer sent something that is not a message this process knows."""


def decode(raw: list[Any]) -> Message:
    """The message that ``raw`` (a list as ``encode`` made it) stands for."""
    try:
        make = _DECODERS[raw[0]]
    except KeyError:
        make = _decoder(raw[0])
    except (IndexError, TypeError):
        raise UnknownMessage(f"not a message: {raw!r:.100}") from None
    return make(*raw)


def records_of(cls: type[_R]) -> Callable[[list[list[Any]]], list[_R]]:
    """Build NamedTuples from their msgpack arrays, in C: no Python frame per record (a peer
    sends each record whole, as msgpack packed it)."""
    make = partial(tuple.__new__, cls)
    return lambda raw: list(map(make, raw))
