"""System tests: application errors raised in tasks and actors.

Checked against real Ray 2.60. Things Ray does that may surprise an implementer:
- get() raises an exception that is at once a RayTaskError and an instance of the original
  exception class (Ray builds a class deriving from both); pytest.raises(ZeroDivisionError)
  therefore catches it. Its .cause is the original exception.
- str() of that error holds the remote traceback: the task's name, the line that raised, and
  the original exception's type and message.
- A task whose argument is a failed object fails with the same error without running.
- Exception classes defined at module level in the test file are pickled by reference, so the
  workers must import the test module (see tests/system/conftest.py).
- Passing an argument that cannot be pickled raises TypeError at .remote(); a task result
  that cannot be pickled fails the task (RayTaskError whose cause is a TypeError).
"""

from __future__ import annotations

import threading

import pytest

T = 30  # upper bound for every get: a bug fails the test instead of hanging it


class ModuleLevelError(Exception):
    """A custom exception class defined in the test module."""


class ErrorWithFields(Exception):
    def __init__(self, code, detail):
        super().__init__(code, detail)
        self.code = code
        self.detail = detail


def test_task_exception_is_task_error_and_original_class(ray):
    @ray.remote
    def divide_by_zero_task():
        return 1 / 0

    with pytest.raises(ZeroDivisionError) as info:
        ray.get(divide_by_zero_task.remote(), timeout=T)
    err = info.value
    assert isinstance(err, ray.exceptions.RayTaskError)
    assert isinstance(err, ray.exceptions.RayError)
    assert isinstance(err.cause, ZeroDivisionError)


def test_task_error_message_contains_remote_traceback(ray):
    @ray.remote
    def failing_function_name_xyz():
        raise ValueError("specific failure text")

    with pytest.raises(ray.exceptions.RayTaskError) as info:
        ray.get(failing_function_name_xyz.remote(), timeout=T)
    text = str(info.value)
    assert "failing_function_name_xyz" in text
    assert "ValueError" in text
    assert "specific failure text" in text
    assert "Traceback" in text or 'File "' in text
    assert isinstance(info.value, ValueError)


def test_task_error_traceback_shows_the_user_s_frames_only(ray):
    """The remote traceback starts at the user's function: none of the worker's own frames
    that ran the call (Ember's used to come first), for a task as for an actor's method."""

    def innermost_helper_frame():
        raise ValueError("deep failure")

    @ray.remote
    def outer_task_frame():
        innermost_helper_frame()

    @ray.remote
    class Failing:
        def method_frame(self):
            innermost_helper_frame()

    calls = [outer_task_frame.remote(), Failing.remote().method_frame.remote()]
    for ref, frame in zip(calls, ["outer_task_frame", "method_frame"], strict=True):
        with pytest.raises(ValueError) as info:
            ray.get(ref, timeout=T)
        text = str(info.value)
        assert f"in {frame}\n" in text and "in innermost_helper_frame\n" in text, text
        assert "ember/_runtime" not in text, text
        assert text.rstrip().endswith("ValueError: deep failure"), text


def test_error_propagates_through_dependent_tasks(ray):
    @ray.remote
    def source():
        raise KeyError("root cause")

    @ray.remote
    def consumer(x):
        return ("consumer ran", x)

    @ray.remote
    def consumer2(x):
        return ("consumer2 ran", x)

    ref = consumer2.remote(consumer.remote(source.remote()))
    with pytest.raises(KeyError) as info:
        ray.get(ref, timeout=T)
    assert isinstance(info.value, ray.exceptions.RayTaskError)
    assert "root cause" in str(info.value)


def test_error_propagates_through_nested_get(ray):
    @ray.remote
    def inner():
        raise IndexError("inner failed")

    @ray.remote
    def outer():
        return ray.get(inner.remote(), timeout=T)

    with pytest.raises(IndexError) as info:
        ray.get(outer.remote(), timeout=T)
    assert isinstance(info.value, ray.exceptions.RayTaskError)
    assert "inner failed" in str(info.value)


def test_custom_module_level_exception(ray):
    @ray.remote
    def raise_custom():
        raise ModuleLevelError("custom message")

    with pytest.raises(ModuleLevelError, match="custom message") as info:
        ray.get(raise_custom.remote(), timeout=T)
    assert isinstance(info.value, ray.exceptions.RayTaskError)
    assert isinstance(info.value.cause, ModuleLevelError)


def test_custom_exception_keeps_attributes_on_cause(ray):
    @ray.remote
    def raise_fields():
        raise ErrorWithFields(404, "not found")

    with pytest.raises(ErrorWithFields) as info:
        ray.get(raise_fields.remote(), timeout=T)
    cause = info.value.cause
    assert isinstance(cause, ErrorWithFields)
    assert (cause.code, cause.detail) == (404, "not found")


def test_exception_class_defined_in_test(ray):
    class LocalError(RuntimeError):
        pass

    @ray.remote
    def raise_local():
        raise LocalError("local class")

    with pytest.raises(RuntimeError, match="local class") as info:
        ray.get(raise_local.remote(), timeout=T)
    assert isinstance(info.value, ray.exceptions.RayTaskError)
    assert type(info.value.cause).__name__ == "LocalError"


def test_get_list_with_one_failure_raises(ray):
    @ray.remote
    def maybe(i):
        if i == 2:
            raise ValueError("item 2")
        return i

    refs = [maybe.remote(i) for i in range(4)]
    with pytest.raises(ValueError, match="item 2"):
        ray.get(refs, timeout=T)
    assert ray.get(refs[0], timeout=T) == 0
    assert ray.get(refs[3], timeout=T) == 3


def test_same_error_on_every_get(ray):
    @ray.remote
    def boom():
        raise ArithmeticError("again")

    ref = boom.remote()
    for _ in range(2):
        with pytest.raises(ArithmeticError, match="again"):
            ray.get(ref, timeout=T)


def test_actor_method_error_is_task_error(ray):
    @ray.remote
    class A:
        def bad_method_name_abc(self):
            raise TypeError("actor method failed")

    a = A.remote()
    with pytest.raises(TypeError) as info:
        ray.get(a.bad_method_name_abc.remote(), timeout=T)
    assert isinstance(info.value, ray.exceptions.RayTaskError)
    assert "bad_method_name_abc" in str(info.value)
    assert "actor method failed" in str(info.value)


def test_task_error_as_argument_to_actor_method(ray):
    @ray.remote
    def boom():
        raise ValueError("upstream")

    @ray.remote
    class A:
        def take(self, x):
            return x

        def ok(self):
            return "ok"

    a = A.remote()
    with pytest.raises(ValueError, match="upstream"):
        ray.get(a.take.remote(boom.remote()), timeout=T)
    assert ray.get(a.ok.remote(), timeout=T) == "ok"


def test_unpicklable_argument_raises_type_error(ray):
    @ray.remote
    def f(x):
        return x

    with pytest.raises(TypeError):
        f.remote(threading.Lock())


def test_unpicklable_result_fails_task(ray):
    @ray.remote
    def returns_lock():
        return threading.Lock()

    with pytest.raises(ray.exceptions.RayTaskError) as info:
        ray.get(returns_lock.remote(), timeout=T)
    assert isinstance(info.value, TypeError)


def test_system_exit_in_task_is_reported(ray):
    @ray.remote(max_retries=0)
    def exits():
        raise SystemExit(3)

    with pytest.raises(ray.exceptions.RayError):
        ray.get(exits.remote(), timeout=T)
