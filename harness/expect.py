"""What a test body asserts, and how a deviation from the page is reported.

A test body states what the page promises and what the kernel did.  When they differ it
raises :class:`Deviation` with both, and the report shows them beside the clause's quote.
Values a test wants in the report even when it passes go through :func:`observe`.
"""

from __future__ import annotations

import errno as errno_mod
from typing import Any, Callable

OBSERVED: dict[str, Any] = {}   # reset in every test child by the sandbox


class Deviation(AssertionError):
    """The kernel did not do what the page says.  ``clause`` optionally names the one
    clause (of those the test checks) that this check is about: the report then marks only
    that clause failed, and leaves the test's other clauses undecided by it."""

    def __init__(self, what: str, expected: Any, observed: Any, clause: str | None = None):
        self.what, self.expected, self.observed, self.clause = what, expected, observed, clause
        super().__init__(f"{what}: expected {_show(expected)}, observed {_show(observed)}")


class Skip(Exception):
    """The test cannot run here; the reason says why (capability, LSM, config, kernel)."""


def _show(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return repr(bytes(value))
    return str(value) if isinstance(value, str) else repr(value)


# Names that share a number on Linux: the one the man pages use.
_PREFERRED = {errno_mod.EOPNOTSUPP: "EOPNOTSUPP", errno_mod.EAGAIN: "EAGAIN",
              errno_mod.EDEADLK: "EDEADLK"}


def errno_name(code: int | None) -> str:
    if code is None:
        return "no error"
    return _PREFERRED.get(code) or errno_mod.errorcode.get(code, str(code))


def errno_number(name: str) -> int:
    try:
        return getattr(errno_mod, name)
    except AttributeError:
        raise ValueError(f"unknown errno name {name!r}") from None


def observe(name: str, value: Any) -> Any:
    """Record an observed value for the report; returns it."""
    OBSERVED[name] = value
    return value


def skip(reason: str) -> None:
    raise Skip(reason)


def equal(what: str, observed: Any, expected: Any, clause: str | None = None) -> Any:
    """Deviation unless ``observed == expected``."""
    observe(what, observed)
    if observed != expected:
        raise Deviation(what, expected, observed, clause)
    return observed


def true(what: str, condition: bool, expected: Any = True, observed: Any = False,
         clause: str | None = None) -> None:
    if not condition:
        raise Deviation(what, expected, observed, clause)


def errno(expected: str | tuple[str, ...], call: Callable, *args, what: str | None = None,
          clause: str | None = None, **kw) -> OSError:
    """Call ``call(*args, **kw)``; it must fail with errno ``expected`` (a name, or a tuple
    of names when the page allows several).  Returns the OSError."""
    names = (expected,) if isinstance(expected, str) else tuple(expected)
    numbers = {errno_number(n) for n in names}
    label = what or getattr(call, "__name__", "call")
    want = " or ".join(names)
    try:
        result = call(*args, **kw)
    except OSError as exc:
        got = errno_name(exc.errno)
        observe(label, got)
        if exc.errno not in numbers:
            raise Deviation(label, want, got, clause) from None
        return exc
    observe(label, f"success ({result!r})")
    raise Deviation(label, want, f"success (returned {result!r})", clause)


def succeeds(call: Callable, *args, what: str | None = None, clause: str | None = None, **kw) -> Any:
    """Call ``call``; an OSError is a deviation (the page says this works)."""
    label = what or getattr(call, "__name__", "call")
    try:
        return call(*args, **kw)
    except OSError as exc:
        raise Deviation(label, "success", errno_name(exc.errno), clause) from None
