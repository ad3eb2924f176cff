"""A small HTML report builder: headline numbers, figures, tables, notes.

Images are referenced by relative path (they sit in the same output folder), so the
report opens from disk with no server, and the folder can be moved as a whole.
"""

from __future__ import annotations

import datetime as _dt
import html
import math
from pathlib import Path
from typing import Any

from cryomat import __version__

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;
color:#1d2430;line-height:1.45;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #dde3ea;padding-bottom:.2em}
.meta{color:#5b6776;font-size:.9em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
td,th{border:1px solid #dde3ea;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f6f9} td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}
figure img{max-width:520px;border:1px solid #dde3ea} figcaption{font-size:.85em;color:#5b6776;max-width:520px}
.ok{color:#17813a;font-weight:600}.warn{color:#b06a00;font-weight:600}.bad{color:#b3261e;font-weight:600}
.note{background:#f6f8fa;border-left:4px solid #8aa4c2;padding:.5em .8em;margin:.6em 0}
"""


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if not math.isfinite(v):
            return "–"
        a = abs(v)
        if a != 0 and (a < 1e-3 or a >= 1e5):
            return f"{v:.3e}"
        return f"{v:.4g}"
    if v is None:
        return "–"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v)
    return str(v)


class Report:
    """Collects sections and renders one HTML page.

    >>> r = Report("Drift correction", subtitle="movie.mrcs")
    >>> r.add_metrics({"total_drift_A": 12.3})
    >>> r.add_figure("drift.png", "Drift trace")
    >>> r.write(out.file("report.html"))
    """

    def __init__(self, title: str, *, subtitle: str = ""):
        self.title = title
        self.subtitle = subtitle
        self.parts: list[str] = []

    def add_heading(self, text: str, *, anchor: str | None = None) -> None:
        """A section heading; ``anchor`` gives it an id to link to (``#anchor``)."""
        ident = f" id='{html.escape(anchor)}'" if anchor else ""
        self.parts.append(f"<h2{ident}>{html.escape(text)}</h2>")

    def insert_summary(self, rows: list[dict], *, position: int = 0, title: str = "Summary") -> None:
        """Insert a table of ``{"name", "title", "ok", "seconds", "anchor"?}`` rows (a table of
        contents with a green/red status) at ``position`` among the parts added so far."""
        body = []
        for r in rows:
            name = html.escape(str(r.get("title") or r.get("name", "")))
            if r.get("anchor"):
                name = f"<a href='#{html.escape(r['anchor'])}'>{name}</a>"
            status = "<span class='ok'>ok</span>" if r.get("ok") else "<span class='bad'>failed</span>"
            body.append(f"<tr><td>{name}</td><td>{status}</td><td class='num'>{html.escape(_fmt(r.get('seconds')))}</td></tr>")
        table = (f"<h2>{html.escape(title)}</h2><table><tr><th>step</th><th>status</th><th>seconds</th></tr>"
                 + "".join(body) + "</table>")
        self.parts.insert(position, table)

    def add_text(self, text: str, *, note: bool = False) -> None:
        body = html.escape(text)
        self.parts.append(f'<div class="note">{body}</div>' if note else f"<p>{body}</p>")

    def add_html(self, fragment: str) -> None:
        """Append trusted HTML produced by cryomat itself."""
        self.parts.append(fragment)

    def add_metrics(self, metrics: dict, *, title: str | None = None) -> None:
        """A two-column table of named numbers (units are in the key names)."""
        if title:
            self.add_heading(title)
        rows = "".join(
            f"<tr><th>{html.escape(str(k))}</th><td class='num'>{html.escape(_fmt(v))}</td></tr>"
            for k, v in metrics.items() if not isinstance(v, (dict,))
        )
        self.parts.append(f"<table>{rows}</table>")

    def add_table(self, table, *, title: str | None = None, max_rows: int = 30) -> None:
        """A pandas DataFrame (first ``max_rows`` rows)."""
        if title:
            self.add_heading(title)
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
        body = []
        for _, row in table.head(max_rows).iterrows():
            body.append("<tr>" + "".join(f"<td class='num'>{html.escape(_fmt(v))}</td>" for v in row.values) + "</tr>")
        more = f"<p class='meta'>{len(table) - max_rows} more rows in the CSV.</p>" if len(table) > max_rows else ""
        self.parts.append(f"<table><tr>{head}</tr>{''.join(body)}</table>{more}")

    def add_figure(self, src: str, caption: str = "") -> None:
        """An image by path relative to the report."""
        self.parts.append(
            f"<figure><a href='{html.escape(src)}'><img src='{html.escape(src)}' alt='{html.escape(caption)}'></a>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )

    def add_link(self, href: str, text: str) -> None:
        self.parts.append(f"<p><a href='{html.escape(href)}'>{html.escape(text)}</a></p>")

    def render(self) -> str:
        now = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
        sub = f"<div class='meta'>{html.escape(self.subtitle)}</div>" if self.subtitle else ""
        return (
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1>{sub}"
            f"<div class='meta'>cryomat {__version__} · {now}</div>"
            + "".join(self.parts)
            + "</body></html>\n"
        )

    def write(self, path: str | Path) -> Path:
        from cryomat.io.atomic import write_text

        return write_text(path, self.render())
