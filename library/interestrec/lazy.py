"""Lazy public names for a package's ``__init__``: each name is imported from its module on first use, so
importing the package stays cheap (no torch, Ray or FastAPI until a name that needs them is touched)."""

from __future__ import annotations

from collections.abc import Callable


def lazy_exports(package: str, names: dict[str, str]) -> Callable[[str], object]:
    """A module-level ``__getattr__`` for ``package`` resolving each of ``names`` (name → module) on first use.

    Args:
        package: the package's ``__name__`` (for the error message).
        names: public name → the module that defines it.
    """

    def __getattr__(name: str) -> object:
        if name in names:
            import importlib

            return getattr(importlib.import_module(names[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
