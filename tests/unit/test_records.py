"""The machines' cheap frozen records behave as frozen dataclasses do where the machines and
their tests rely on it: construction, equality, hashing and repr."""

from __future__ import annotations

import pytest

from ember._protocol.records import record


@record
class Move:
    """A sample action."""

    who: str
    to: int = 0


@record
class Stop:
    pass


def test_built_by_position_or_keyword_with_defaults() -> None:
    assert Move("a", 2) == Move(who="a", to=2)
    assert Move("a").to == 0
    assert Stop() == Stop()
    with pytest.raises(TypeError):
        Move()  # type: ignore[call-arg]


def test_equal_by_type_and_fields_and_hashed_alike() -> None:
    assert Move("a", 1) != Move("a", 2)
    assert Move("a", 1) != ("a", 1)
    assert len({Move("a", 1), Move("a", 1), Move("b", 1)}) == 2
    assert repr(Move("a", 1)) == "Move(who='a', to=1)"
    assert Move.__doc__ == "A sample action."


def test_slotted_and_matchable() -> None:
    with pytest.raises(AttributeError):
        Move("a").other = 1  # type: ignore[attr-defined]
    match Move("a", 3):
        case Move(who, to):
            assert (who, to) == ("a", 3)
