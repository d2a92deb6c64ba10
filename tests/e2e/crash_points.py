"""What the crash children share: counting calls, and dying at a chosen one."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def die_at(calls_of: Mapping[type, Sequence[str]], mode: str, point: int, label: str) -> list[int]:
    """Wrap each named method of each class: print `<label> N: Class.method` before the
    N-th call of any of them, and SIGKILL this process just `before` or `after` the
    `point`-th (mode `none`: never). Returns the live call count (one item)."""
    count = [0]

    def counted(original: Callable[..., Any]) -> Callable[..., Any]:
        def call(self: object, *args: Any, **kwargs: Any) -> Any:
            count[0] += 1
            print(f"{label} {count[0]}: {type(self).__name__}.{original.__name__}", flush=True)
            if mode == "before" and count[0] == point:
                os.kill(os.getpid(), signal.SIGKILL)
            result = original(self, *args, **kwargs)
            if mode == "after" and count[0] == point:
                os.kill(os.getpid(), signal.SIGKILL)
            return result

        return call

    for kind, names in calls_of.items():
        for name in names:
            setattr(kind, name, counted(getattr(kind, name)))
    return count
