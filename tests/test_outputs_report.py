"""report.html: self-contained, escaped, numbers formatted; figures carry a scale bar in nm."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cryomat.report import Report
from cryomat.report.figures import new_figure, show_image


def test_report_renders_escaped_self_contained_html(tmp_path):
    r = Report("Drift <correction>", subtitle="movie & co")
    r.add_heading("Result")
    r.add_metrics({"total_drift_A": 12.3456, "bad_A": float("nan"), "tiny_A": 1.2e-6})
    r.add_table(pd.DataFrame({"frame": range(40), "shift_A": np.linspace(0, 1, 40)}), max_rows=5)
    r.add_figure("drift.png", "Drift <trace>")
    r.add_text("a < b", note=True)
    html = r.write(tmp_path / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert "Drift &lt;correction&gt;" in html and "movie &amp; co" in html and "a &lt; b" in html
    assert "12.35" in html and "1.200e-06" in html and "–" in html  # NaN shown as a dash, not 'nan'
    assert "35 more rows in the CSV" in html
    assert "http" not in html.replace("http-equiv", "")  # no server, no CDN: opens offline


def test_scale_bar_length_in_nm():
    fig, ax = new_figure(1, 1)
    show_image(ax[0, 0], np.zeros((100, 400)), pixel_size=2.0)  # 400 px x 2 A = 80 nm wide
    texts = [t.get_text() for t in ax[0, 0].texts]
    # the longest "nice" length <= a quarter of the width (20 nm) is 20 nm
    assert texts == ["20 nm"]
    (line,) = ax[0, 0].lines
    x = line.get_xdata()
    assert x[1] - x[0] == 100.0  # 20 nm / 2 A per pixel


def test_summary_table_links_to_sections(tmp_path):
    r = Report("demo")
    r.add_text("intro")
    r.add_heading("Imaging", anchor="imaging")
    r.insert_summary([{"name": "imaging", "title": "Imaging", "ok": True, "seconds": 1.5, "anchor": "imaging"},
                      {"name": "x", "title": "X", "ok": False, "seconds": 0.1}], position=1, title="Steps")
    html = r.render()
    assert html.index("<h2>Steps</h2>") < html.index("<h2 id='imaging'>")  # table first, after the intro
    assert "href='#imaging'" in html and "class='bad'>failed" in html and "class='ok'>ok" in html
