"""Tests for ember._core.retry.should_retry_error."""

from __future__ import annotations

import pytest

from ember._core.retry import should_retry_error


class AppError(Exception):
    pass


class SpecificAppError(AppError):
    pass


class OtherError(Exception):
    pass


def never_called() -> BaseException | None:
    raise AssertionError("the cause must not be computed when the answer does not need it")


def test_true_retries_any_error_without_looking_at_it() -> None:
    assert should_retry_error(True, never_called) is True


@pytest.mark.parametrize("value", [False, None, [], ()])
def test_false_or_empty_never_retries(value: object) -> None:
    assert should_retry_error(value, never_called) is False


def test_list_matches_exact_class() -> None:
    assert should_retry_error([AppError], lambda: AppError("x")) is True


def test_list_matches_subclass() -> None:
    assert should_retry_error([AppError], lambda: SpecificAppError("x")) is True


def test_list_does_not_match_superclass_or_unrelated_class() -> None:
    assert should_retry_error([SpecificAppError], lambda: AppError("x")) is False
    assert should_retry_error([AppError], lambda: OtherError("x")) is False


def test_list_with_several_classes_matches_any() -> None:
    classes = [OtherError, AppError]
    assert should_retry_error(classes, lambda: SpecificAppError()) is True
    assert should_retry_error(classes, lambda: OtherError()) is True
    assert should_retry_error(classes, lambda: ValueError()) is False


def test_builtin_hierarchy() -> None:
    assert should_retry_error([ArithmeticError], lambda: ZeroDivisionError()) is True
    assert should_retry_error([Exception], lambda: KeyError("k")) is True
    assert should_retry_error([OSError], lambda: ConnectionResetError()) is True
    assert should_retry_error([ValueError], lambda: TypeError()) is False


def test_tuple_of_classes_is_accepted() -> None:
    assert should_retry_error((AppError,), lambda: SpecificAppError()) is True


def test_unknown_cause_is_not_retried() -> None:
    assert should_retry_error([Exception], lambda: None) is False


def test_cause_is_computed_once() -> None:
    calls = []

    def cause() -> BaseException:
        calls.append(1)
        return AppError()

    assert should_retry_error([OtherError, AppError], cause) is True
    assert len(calls) == 1
