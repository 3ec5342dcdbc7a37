"""When a failed task runs again.

A task whose worker died is retried while it has retries left (``max_retries``, -1 for ever);
an exception raised by the task's own code is retried only if the user opted in with
``retry_exceptions`` (True, or a list of exception classes the error must match).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def should_retry_error(retry_exceptions: Any, cause: Callable[[], BaseException | None]) -> bool:
    if retry_exceptions is True:
        return True
    if not retry_exceptions:
        return False
    error = cause()
    return error is not None and isinstance(error, tuple(retry_exceptions))
