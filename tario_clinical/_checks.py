"""The package's checks of options and levels, and its one way of renaming a parameter.

:func:`check_choice` refuses an option that is not one of the allowed values and
:func:`check_level` a confidence level outside (0, 1), both with
:class:`~tario_clinical.errors.SchemaError` (a ``ValueError``), naming the parameter, what is
allowed and the value received. :func:`renamed_parameters` keeps an old keyword working for one
release with a :class:`DeprecationWarning` (the package's names: ``level`` for a confidence
level, ``n_jobs`` for parallelism), and :func:`positional_deprecated` keeps positional calls of
a parameter that became keyword-only working for one release (at most two positional
parameters per public function, scanpy-style); :func:`deprecated_attribute` keeps a renamed
attribute of a result object readable for one release.
"""

from __future__ import annotations

import functools
import math
import sys
import warnings
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from .errors import SchemaError

__all__ = [
    "check_choice",
    "check_level",
    "renamed_parameters",
    "positional_deprecated",
    "deprecated_attribute",
]

F = TypeVar("F", bound=Callable[..., Any])


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """``value`` when it is one of ``allowed``, else :class:`SchemaError`.

    Parameters
    ----------
    name : str
        The parameter (or key) checked, as the caller wrote it.
    value : Any
        What was passed.
    allowed : iterable
        The accepted values, in the order the message lists them.

    Returns
    -------
    Any
        ``value``.

    Raises
    ------
    SchemaError
        ``"<name>=<value> is not allowed; <name> must be one of [...]."``

    Examples
    --------
    >>> check_choice("method", "delong", ("delong", "bootstrap"))
    'delong'
    >>> check_choice("method", "x", ("delong", "bootstrap"))
    Traceback (most recent call last):
    ...
    tario_clinical.errors.SchemaError: method='x' is not allowed; method must be one of ['delong', 'bootstrap'].
    """
    options = list(allowed)
    try:
        ok = value in options
    except TypeError:  # unhashable / uncomparable values are not among the options
        ok = False
    if not ok:
        raise SchemaError(f"{name}={value!r} is not allowed; {name} must be one of {options}.")
    return value


def check_level(level: Any, *, name: str = "level") -> float:
    """A confidence level as a float strictly between 0 and 1, else :class:`SchemaError`.

    Parameters
    ----------
    level : float
        The confidence level (``0.95`` for 95 % intervals).
    name : str, default "level"
        The parameter named in the message.

    Returns
    -------
    float

    Raises
    ------
    SchemaError
        For a non-number, NaN, or a value outside (0, 1) (e.g. ``95`` instead of ``0.95``).
    """
    try:
        v = float(level)
    except (TypeError, ValueError):
        v = math.nan
    if isinstance(level, bool) or not (0.0 < v < 1.0):
        raise SchemaError(f"{name} must be in (0, 1), e.g. 0.95 for 95% intervals; got {level!r}.")
    return v


def _outside_stacklevel() -> int:
    """The ``stacklevel`` of a warning raised in a wrapper of this module that points at the
    first frame outside it (the user's call, through stacked wrappers)."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
        level += 1
    return level


def renamed_parameters(**renames: str) -> Callable[[F], F]:
    """Decorator: accept old keyword names for one release, with a :class:`DeprecationWarning`.

    Parameters
    ----------
    **renames : str
        ``old_name="new_name"`` pairs; the decorated function's signature has the new names.

    Returns
    -------
    callable
        The decorator. Passing both the old and the new name is a ``TypeError``.

    Examples
    --------
    >>> import warnings
    >>> @renamed_parameters(conf_level="level")
    ... def interval(x, *, level=0.95):
    ...     return level
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     interval(1, conf_level=0.9), w[0].category.__name__
    (0.9, 'DeprecationWarning')
    """

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in renames.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(
                            f"{func.__qualname__}() got both {new}= and its deprecated name "
                            f"{old}=; pass {new}= only"
                        )
                    warnings.warn(
                        f"{func.__qualname__}(): {old}= is deprecated and will be removed in "
                        f"the next release; use {new}=",
                        DeprecationWarning,
                        stacklevel=_outside_stacklevel(),
                    )
                    kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)

        wrapper.__deprecated_parameters__ = dict(renames)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def positional_deprecated(*names: str) -> Callable[[F], F]:
    """Decorator: accept the keyword-only ``names`` positionally for one release, with a warning.

    Parameters
    ----------
    *names : str
        The keyword-only parameters that used to follow the positional ones, in their old
        order.

    Returns
    -------
    callable
        The decorator; the decorated function's signature is unchanged (keyword-only).

    Examples
    --------
    >>> import warnings
    >>> @positional_deprecated("threshold")
    ... def summary(y, s, *, threshold=0.5):
    ...     return threshold
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     summary(1, 2, 0.3), w[0].category.__name__
    (0.3, 'DeprecationWarning')
    """

    def decorate(func: F) -> F:
        import inspect

        params = inspect.signature(func).parameters.values()
        n_pos = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            extra = args[n_pos:]
            if extra:
                if len(extra) > len(names):
                    raise TypeError(
                        f"{func.__qualname__}() takes {n_pos} positional arguments but "
                        f"{len(args)} were given"
                    )
                moved = names[: len(extra)]
                dup = [n for n in moved if n in kwargs]
                if dup:
                    raise TypeError(f"{func.__qualname__}() got multiple values for {dup}")
                warnings.warn(
                    f"{func.__qualname__}(): passing {', '.join(moved)} positionally is "
                    f"deprecated and will be an error in the next release; pass "
                    + ", ".join(f"{n}=" for n in moved),
                    DeprecationWarning,
                    stacklevel=_outside_stacklevel(),
                )
                kwargs.update(zip(moved, extra, strict=True))
                args = args[:n_pos]
            return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def deprecated_attribute(old: str, new: str) -> property:
    """A read-only property ``old`` that returns attribute ``new`` with a :class:`DeprecationWarning`.

    Parameters
    ----------
    old : str
        The attribute's former name (the name the property is assigned to in the class).
    new : str
        The attribute's name now.

    Returns
    -------
    property

    Examples
    --------
    >>> import warnings
    >>> class Result:
    ...     level = 0.9
    ...     conf_level = deprecated_attribute("conf_level", "level")
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     Result().conf_level, w[0].category.__name__
    (0.9, 'DeprecationWarning')
    """

    def getter(self: Any) -> Any:
        cls = type(self).__name__
        warnings.warn(
            f"{cls}.{old} is deprecated and will be removed in the next release; use {cls}.{new}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(self, new)

    return property(
        getter, doc=f"Deprecated name of :attr:`{new}` (read-only; removed in the next release)."
    )
