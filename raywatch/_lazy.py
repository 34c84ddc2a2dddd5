"""Lazy re-exports for package ``__init__`` modules (PEP 562 ``__getattr__``/``__dir__``).

A package lists its public names as ``name -> "module:attribute"`` and imports each one
from its module on first use, so that importing the package stays cheap (``import raywatch``
never pulls in ``ray``). This module imports nothing but :mod:`importlib`.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Dict, List, MutableMapping, Tuple

__all__ = ["lazy_exports"]


def lazy_exports(
    namespace: MutableMapping[str, Any], exports: Dict[str, str], *, cache: bool = True
) -> Tuple[Callable[[str], Any], Callable[[], List[str]]]:
    """``(__getattr__, __dir__)`` for the package whose ``globals()`` is ``namespace``.

    ``exports`` maps a public name to ``"module:attribute"``. With ``cache`` a name, once
    imported, is stored in ``namespace`` so that later lookups do not come back here.
    ``__dir__`` answers the package's ``__all__``.

    >>> ns = {"__name__": "pkg", "__all__": ["dumps"]}
    >>> getattr_, dir_ = lazy_exports(ns, {"dumps": "json:dumps"})
    >>> getattr_("dumps") is ns["dumps"], dir_()
    (True, ['dumps'])
    >>> getattr_("loads")
    Traceback (most recent call last):
    ...
    AttributeError: module 'pkg' has no attribute 'loads'
    """
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        target = exports.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attr = target.split(":")
        value = getattr(importlib.import_module(module), attr)
        if cache:
            namespace[name] = value
        return value

    def __dir__() -> List[str]:
        return namespace["__all__"]

    return __getattr__, __dir__
