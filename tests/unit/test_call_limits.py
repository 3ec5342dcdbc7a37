"""``max_calls`` (ember._core.call_limits): which limit a remote function has, and when the
worker that runs it retires, with plain values."""

from __future__ import annotations

import pickle

from ember._core.call_limits import CallCounter, CallLimited, max_calls_of


def test_the_limit_is_the_function_s_own_else_one_for_gpu_functions_as_in_ray() -> None:
    assert max_calls_of({}) == 0
    assert max_calls_of({"max_calls": 3}) == 3
    assert max_calls_of({"num_gpus": 1}) == 1
    assert max_calls_of({"num_gpus": 0.5}) == 1
    assert max_calls_of({"num_gpus": 1, "max_calls": 0}) == 0  # 0: no limit


def test_a_worker_retires_at_the_limit_of_one_function_only() -> None:
    calls = CallCounter()
    calls.limit(b"f", 2)
    calls.limit(b"g", 0)  # (no limit: not tracked)
    assert calls.limits == {b"f": 2}
    assert [calls.ran(b"g") for _ in range(5)] == [False] * 5
    assert calls.ran(b"f") is False
    assert calls.ran(b"f") is True


def test_a_limited_function_pickles_with_its_limit() -> None:
    limited = pickle.loads(pickle.dumps(CallLimited(max_calls_of, 4)))
    assert limited.function is max_calls_of and limited.max_calls == 4
