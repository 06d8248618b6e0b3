"""The one libc handle, and errno-checked calls through it."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def check(ret: int, call: str) -> int:
    """Return ``ret``, or raise OSError with the call's errno when it is negative."""
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{call}: {os.strerror(err)}")
    return ret
