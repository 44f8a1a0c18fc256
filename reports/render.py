"""Reports for people and for files: aligned text tables, CSV/parquet, a self-contained HTML page.

Files are written atomically (a temporary file in the same folder, then renamed), so a reader
sees the old file or the whole new one. Plots use matplotlib's object API (no pyplot state) and
are embedded as base64 PNG: the HTML needs no other file and no network.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from features.io import temp_beside
from reports.balance import BalanceReport
from reports.funnel import FunnelReport
from reports.incrementality import ALL, GroupLift, IncrementalityReport
from stats import Interval

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")

# ---------------------------------------------------------------- formatting


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:+.2%}" if signed else f"{value:.2%}"


def _num(value: float | None, signed: bool = False, digits: int = 2) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:+,.{digits}f}" if signed else f"{value:,.{digits}f}"


def _interval(est: Interval | None, fmt: Callable[..., str], unit: str = "") -> str:
    if est is None:
        return "-"
    mark = " *" if est.excludes_zero() else ""
    return f"{fmt(est.value, True)} [{fmt(est.low, True)}, {fmt(est.high, True)}]{unit}{mark}"


def _points(value: float, signed: bool) -> str:
    return f"{value * 100:+.2f}" if signed else f"{value * 100:.2f}"


def text_table(rows: Sequence[Sequence[str]], headers: Sequence[str],
               right: Sequence[bool] | None = None) -> str:
    """Plain aligned text: a header, a rule, one line per row; columns right-aligned by flag."""
    right = right if right is not None else [i > 0 for i in range(len(headers))]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w)
                         for c, w, r in zip(cells, widths, right, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])]
                     + [line(r) for r in rows])


# ---------------------------------------------------------------- terminal text


def _conversion_cells(row: GroupLift) -> list[str]:
    return [row.group, f"{row.n_treated:,}", f"{row.n_holdout:,}",
            _pct(row.conversion_treated), _pct(row.conversion_holdout),
            _interval(row.conversion_lift, _points, " pp"),
            _interval(row.conversion_relative_lift, lambda v, s: f"{v:+.1%}")]


def _money_cells(row: GroupLift) -> list[str]:
    roi = "-" if row.roi is None else f"{row.roi.value:+.2f} [{row.roi.low:+.2f}, " \
                                     f"{row.roi.high:+.2f}]"
    return [row.group, _num(row.revenue_treated), _num(row.revenue_holdout),
            _interval(row.revenue_lift, _num),
            _interval(row.incremental_revenue, lambda v, s: _num(v, s, 0)),
            _interval(row.incremental_margin, lambda v, s: _num(v, s, 0)),
            _num(row.contact_cost, digits=0), roi]


CONVERSION_HEADERS = ("group", "treated", "holdout", "conv treated", "conv holdout",
                      "conversion lift [95% CI]", "relative lift [95% CI]")
MONEY_HEADERS = ("group", "rev/dec treated", "rev/dec holdout", "revenue lift/dec [95% CI]",
                 "incremental revenue [95% CI]", "incremental margin [95% CI]", "contact cost",
                 "ROI [95% CI]")


def incrementality_text(report: IncrementalityReport) -> str:
    """The report as terminal text: the SRM verdict first, then conversion and money tables."""
    srm = report.srm.message()
    alarm = report.srm.mismatch or report.srm.customer_mismatch
    banner = ["!" * 78, srm, "!" * 78] if alarm else [srm]
    parts = banner + [
        "",
        f"Incrementality by {report.by} (treated vs randomized holdout, intent-to-treat; "
        "* = 95% interval excludes 0)",
        "",
        text_table([_conversion_cells(r) for r in report.rows], CONVERSION_HEADERS),
        "",
        text_table([_money_cells(r) for r in report.rows], MONEY_HEADERS),
    ]
    parts += [""] + [f"note: {n}" for n in report.notes] if report.notes else []
    return "\n".join(parts)


def funnel_text(report: FunnelReport) -> str:
    """The funnel as terminal text, with the constraint named under it."""
    rows = [[s.name, f"{s.count:,}", _pct(s.from_previous), _pct(s.from_top),
             "<- constraint" if s.name == report.constraint else ""] for s in report.stages]
    table = text_table(rows, ("stage", "decisions", "from previous", "from top", "note"),
                       right=(False, True, True, True, False))
    return f"{table}\n\n{report.constraint_message()}"


def balance_text(report: BalanceReport) -> str:
    """Balance as terminal text, largest |SMD| first."""
    rows = [[r.feature, _num(r.mean_treated, digits=3), _num(r.mean_holdout, digits=3),
             _num(r.smd, True, 3), f"{r.n_treated:,}", f"{r.n_holdout:,}",
             "FLAG" if r.flagged else ""] for r in report.rows]
    table = text_table(rows, ("feature", "mean treated", "mean holdout", "SMD", "n treated",
                              "n holdout", f"|SMD|>{report.threshold}"),
                       right=(False, True, True, True, True, True, False))
    return f"{report.summary()}\n\n{table}"


# ---------------------------------------------------------------- files


def atomic_write(path: str | Path, write: Callable[[str], Any]) -> Path:
    """Call `write(tmp_path)` then rename over `path`; the temporary file never lingers.

    The file's mode follows the umask, as any new file's (`features.io.temp_beside`).
    """
    path = Path(path)
    tmp = temp_beside(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def check_table_path(path: str | Path) -> None:
    """ValueError unless `path` names a table `write_table` writes (.csv or .parquet)."""
    if Path(path).suffix.lower() not in TABLE_SUFFIXES:
        raise ValueError(f"cannot write '{path}': use a .csv or .parquet file name")


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write CSV or parquet, chosen by the extension; ValueError for any other extension."""
    check_table_path(path)
    if Path(path).suffix.lower() == ".csv":
        return atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))
    return atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


def write_text(text: str, path: str | Path) -> Path:
    """Write UTF-8 text atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


# ---------------------------------------------------------------- plots


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def lift_plot(report: IncrementalityReport) -> str:
    """Conversion and revenue lift per group with 95% error bars, as base64 PNG."""
    rows = [r for r in report.rows if r.conversion_lift is not None]
    fig = Figure(figsize=(9, 1.4 + 0.45 * max(len(rows), 1)), dpi=100)
    axes = fig.subplots(1, 2, sharey=True)
    labels = [r.group for r in rows]
    ys = list(range(len(rows)))[::-1]
    panels = ((axes[0], [r.conversion_lift for r in rows], 100.0,
               "conversion lift (percentage points)"),
              (axes[1], [r.revenue_lift for r in rows], 1.0, "revenue lift per decision"))
    for ax, estimates, scale, title in panels:
        for y, est, label in zip(ys, estimates, labels, strict=True):
            if est is None:
                continue
            colour = "#1b7837" if est.low > 0 else "#b2182b" if est.high < 0 else "#555555"
            ax.errorbar(est.value * scale, y,
                        xerr=[[(est.value - est.low) * scale], [(est.high - est.value) * scale]],
                        fmt="s" if label == ALL else "o", color=colour, capsize=4)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(ys, labels)
    fig.suptitle(f"Lift by {report.by} with 95% intervals (green/red: excludes 0)",
                 fontsize=11)
    fig.tight_layout()
    return _png(fig)


def revenue_plot(report: IncrementalityReport) -> str:
    """Treated vs holdout revenue per decision per group, as base64 PNG."""
    rows = report.rows
    fig = Figure(figsize=(9, 4), dpi=100)
    ax = fig.subplots()
    xs = range(len(rows))
    width = 0.38
    ax.bar([x - width / 2 for x in xs], [r.revenue_treated or 0.0 for r in rows], width,
           label="treated", color="#2166ac")
    ax.bar([x + width / 2 for x in xs], [r.revenue_holdout or 0.0 for r in rows], width,
           label="holdout", color="#bbbbbb")
    ax.set_xticks(list(xs), [r.group for r in rows], rotation=30, ha="right")
    ax.set_ylabel("revenue per decision")
    ax.set_title("Revenue per decision: treated vs holdout", fontsize=11)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def funnel_plot(report: FunnelReport) -> str:
    """Funnel stages as horizontal bars, the constraint highlighted, as base64 PNG."""
    stages = report.stages
    fig = Figure(figsize=(9, 3.6), dpi=100)
    ax = fig.subplots()
    ys = list(range(len(stages)))[::-1]
    colours = ["#d6604d" if s.name == report.constraint else "#4393c3" for s in stages]
    ax.barh(ys, [s.count for s in stages], color=colours)
    for y, s in zip(ys, stages, strict=True):
        ax.text(s.count, y, f" {s.count:,} ({_pct(s.from_top)} of top)", va="center",
                fontsize=9)
    ax.set_yticks(ys, [s.name for s in stages])
    ax.set_xlim(0, max([s.count for s in stages] + [1]) * 1.35)
    ax.set_xlabel("decisions")
    ax.set_title("Decision funnel (red: largest relative drop)", fontsize=11)
    fig.tight_layout()
    return _png(fig)


# ---------------------------------------------------------------- HTML

_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; margin: 2rem auto;
       max-width: 1100px; color: #222; line-height: 1.45; padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0; }
th, td { padding: 0.3rem 0.6rem; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; } tr.total td { font-weight: 600; border-top: 2px solid #999; }
.banner { padding: 0.8rem 1rem; border-radius: 6px; margin: 1rem 0; }
.bad { background: #fde0dd; border: 2px solid #b2182b; font-weight: 600; }
.ok { background: #e5f5e0; border: 1px solid #a1d99b; }
.muted { color: #666; font-size: 0.85rem; } img { max-width: 100%; }
"""


def _html_table(rows: Sequence[Sequence[str]], headers: Sequence[str],
                total: str | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    total_row = '<tr class="total">'
    body = "".join(
        (total_row if total is not None and r[0] == total else "<tr>")
        + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def incrementality_html(report: IncrementalityReport, funnel: FunnelReport | None = None, *,
                        title: str = "Incrementality report", subtitle: str = "") -> str:
    """A self-contained HTML page: SRM verdict, tables, lift/revenue/funnel plots, methods."""
    from reports.incrementality import METHODS

    srm_class = "bad" if report.srm.mismatch or report.srm.customer_mismatch else "ok"
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="muted">{html.escape(subtitle)} Generated {generated}. Treated decisions '
        f"against the randomized holdout, grouped by {html.escape(report.by)} "
        "(intent-to-treat); * marks a 95% interval that excludes 0.</p>",
        f'<div class="banner {srm_class}">{html.escape(report.srm.message())}</div>',
        "<h2>Conversion</h2>",
        _html_table([_conversion_cells(r) for r in report.rows], CONVERSION_HEADERS, ALL),
        "<h2>Revenue and profit</h2>",
        _html_table([_money_cells(r) for r in report.rows], MONEY_HEADERS, ALL),
    ]
    if report.notes:
        parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in report.notes)
                     + "</ul>")
    parts += [
        "<h2>Lift with 95% intervals</h2>",
        f'<img alt="lift per {html.escape(report.by)}" '
        f'src="data:image/png;base64,{lift_plot(report)}">',
        "<h2>Revenue per decision</h2>",
        f'<img alt="revenue per decision" src="data:image/png;base64,{revenue_plot(report)}">',
    ]
    if funnel is not None:
        stage_rows = [[s.name, f"{s.count:,}", _pct(s.from_previous), _pct(s.from_top)]
                      for s in funnel.stages]
        parts += [
            "<h2>Funnel</h2>",
            f"<p>{html.escape(funnel.constraint_message())}</p>",
            _html_table(stage_rows, ("stage", "decisions", "from previous", "from top")),
            f'<img alt="funnel" src="data:image/png;base64,{funnel_plot(funnel)}">',
        ]
    parts += ["<h2>Methods</h2>", "<ul>"]
    parts += [f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in METHODS.items()]
    parts += ["</ul>", "</body></html>"]
    return "\n".join(parts)
