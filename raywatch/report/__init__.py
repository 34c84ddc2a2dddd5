"""The HTML report: one self-contained offline file from the stats actor's history.

>>> from raywatch.report import render_report
>>> "<svg" in render_report({"models": {}, "alerts": []})
True
"""

from raywatch.report.html import render_report, write_report

__all__ = ["render_report", "write_report"]
