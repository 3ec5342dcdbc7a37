"""The argument check made at ``.remote()`` (``_core/signatures.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from ember._core.signatures import checker, spec_of

_DEFAULT = object()  # (a default whose text is no valid Python: it must not be copied)


def f(a: int, b: int = 0, /, c: Any = _DEFAULT, *rest: int, d: int, **kw: Any) -> None:
    pass


class K:
    def method(self, x: int, y: int = 1) -> None:
        pass


def test_a_spec_keeps_the_parameters_and_only_whether_each_has_a_default() -> None:
    assert spec_of(f) == "(a, b=None, /, c=None, *rest, d, **kw)"
    assert spec_of(K.method, drop_first=True) == "(x, y=None)"
    assert spec_of(K().method) == "(x, y=None)"


def test_anything_fits_a_function_taking_args_and_kwargs() -> None:
    assert spec_of(lambda *args, **kwargs: None) is None
    assert checker(None, "g") is None


def test_the_check_accepts_what_fits_and_names_the_function_when_not() -> None:
    check = checker(spec_of(f), "f")
    assert check is not None
    check(1, d=2)
    check(1, 2, 3, 4, 5, d=6, extra=7)
    with pytest.raises(TypeError, match=r"f\(\) missing 1 required keyword-only argument: 'd'"):
        check(1)
    with pytest.raises(TypeError, match="'a'"):  # (positional-only: a=1 goes to **kw)
        check(a=1, d=2)
    method = checker(spec_of(K.method, drop_first=True), "K.method")
    assert method is not None
    with pytest.raises(TypeError, match=r"K.method\(\) takes from 1 to 2 positional"):
        method(1, 2, 3)


def test_a_check_is_built_once_per_parameter_list() -> None:
    assert checker("(x)", "h") is checker("(x)", "h")
