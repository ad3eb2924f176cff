"""Figures and self-contained HTML reports (open in a browser, no server)."""

from cryomat.report.html import Report

__all__ = ["Report"]
