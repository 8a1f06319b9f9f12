"""Typed records that cost nothing to define: a stand-in for ``@dataclass`` on start-up paths.

Every agent call starts a Python on the box and every CLI call one here, so what a module does at
import counts on each look and launch. ``dataclasses`` pulls in ``inspect`` (~10-20 ms cold) and
builds each class's methods with ``exec`` (~1 ms a class). :func:`shape` gives the same surface —
keyword/positional ``__init__`` with defaults, ``__eq__``, ``__repr__``, optional frozenness —
from the class's annotations, without either. Type checkers see a real dataclass (the
``TYPE_CHECKING`` branch), so constructions are checked as strictly as before.

Stdlib only and Python >= 3.8: it is shipped in the bundle next to :mod:`outlive.wire`.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing's own flag costs an import of typing on the hot path
if TYPE_CHECKING:
    from dataclasses import dataclass as shape
    from dataclasses import field
    from typing import Any, TypeVar

    T = TypeVar("T")
else:

    class _Factory:
        __slots__ = ("make",)

        def __init__(self, make):
            self.make = make

    def field(*, default_factory):
        """A default built fresh for each instance (a list, a dict)."""
        return _Factory(default_factory)

    def shape(cls=None, *, frozen=False):
        """Build ``__init__``, ``__eq__`` and ``__repr__`` from the class's annotations."""

        def build(cls):
            ordered, defaults = {}, {}
            for c in reversed(cls.__mro__):  # base fields first, each once
                # not inspect.get_annotations: 3.10+, and inspect is what this module avoids
                for name in c.__dict__.get("__annotations__", {}):  # noqa: RUF063
                    ordered[name] = None
                    if name in c.__dict__:
                        defaults[name] = c.__dict__[name]
            names = tuple(ordered)
            for name, value in defaults.items():
                if isinstance(value, _Factory) and name in cls.__dict__:
                    delattr(cls, name)
            setter = object.__setattr__

            def __init__(self, *args, **values):
                if len(args) > len(names):
                    raise TypeError(f"{cls.__name__} takes {len(names)} arguments at most")
                for i, value in enumerate(args):
                    name = names[i]
                    if name in values:
                        raise TypeError(f"{cls.__name__} got {name!r} twice")
                    values[name] = value
                for name in names:
                    if name in values:
                        value = values.pop(name)
                    elif name in defaults:
                        value = defaults[name]
                        if isinstance(value, _Factory):
                            value = value.make()
                    else:
                        raise TypeError(f"{cls.__name__} needs {name!r}")
                    setter(self, name, value)
                if values:
                    raise TypeError(f"{cls.__name__} got unexpected {', '.join(sorted(values))}")

            def __eq__(self, other):
                if other.__class__ is not self.__class__:
                    return NotImplemented
                return all(getattr(self, n) == getattr(other, n) for n in names)

            def __repr__(self):
                body = ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
                return f"{cls.__name__}({body})"

            cls.__init__ = __init__
            cls.__eq__ = __eq__
            cls.__repr__ = __repr__
            cls.__hash__ = None
            cls._shape_fields = names
            if frozen:

                def __setattr__(self, name, value):
                    raise AttributeError(f"{cls.__name__} is read-only; use replace()")

                def __hash__(self):
                    return hash(tuple(getattr(self, n) for n in names))

                cls.__setattr__ = __setattr__
                cls.__delattr__ = __setattr__
                cls.__hash__ = __hash__
            return cls

        return build if cls is None else build(cls)


def fields_of(obj: object) -> tuple[str, ...]:
    """The field names of a shape (or a dataclass), in declaration order."""
    names = getattr(type(obj), "_shape_fields", None)
    if names is None:  # a real dataclass (under a type checker, or a caller's own)
        names = tuple(getattr(type(obj), "__dataclass_fields__", {}))
    return tuple(names)


def as_dict(obj: object) -> dict[str, Any]:
    """The fields as a dict (shallow: nested shapes stay objects)."""
    return {name: getattr(obj, name) for name in fields_of(obj)}


def replace(obj: T, **changes: Any) -> T:
    """A copy of ``obj`` with ``changes`` (like ``dataclasses.replace``)."""
    values = as_dict(obj)
    values.update(changes)
    return type(obj)(**values)


__all__ = ["as_dict", "field", "fields_of", "replace", "shape"]
