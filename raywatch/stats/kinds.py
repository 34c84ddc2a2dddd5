"""The section and extension kinds raywatch defines, registered by importing this module.

:mod:`raywatch.stats.summary` and :mod:`raywatch.stats.profile` import it, so whatever reads a
summary or a profile knows every built-in kind (:mod:`raywatch.stats.sections`) without the
registry importing its users. A new kind's module goes in this list.

>>> import raywatch.stats.kinds
>>> from raywatch.stats.sections import SECTIONS, EXTENSIONS
>>> {"cbpe", "comoments", "outliers", "pca", "vector"} <= set(SECTIONS)
True
>>> {"cbpe", "correlation", "outliers", "pca", "vector"} <= set(EXTENSIONS)
True
"""

from raywatch.stats import comoments, confidence, outliers, reconstruction, vectors  # noqa: F401  (registration)

__all__: list = []
