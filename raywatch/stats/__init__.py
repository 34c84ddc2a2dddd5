"""raywatch.stats: reference profiles, mergeable window summaries, sketches.

The pure statistical core: numpy only, never ``ray``. See :mod:`raywatch.stats.profile`
and :mod:`raywatch.stats.summary`.
"""

from raywatch.stats.codec import FormatError
from raywatch.stats.profile import Profile
from raywatch.stats.summary import ColumnSummary, WindowSummary

__all__ = ["ColumnSummary", "FormatError", "Profile", "WindowSummary"]
