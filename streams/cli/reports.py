"""`leadscore whatif`'s report (`scoring.whatif.WhatIf`): a terminal summary and an HTML page.

The HTML page is one self-contained file: its styles inline and its charts
inline SVG drawn here, with no script and nothing fetched, so that it opens
offline, in a mail attachment, or from a CI artifact.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from rich.console import Console
from rich.table import Table

from scoring.state import Stage
from scoring.whatif import RuleFigures, Side, WhatIf

BASELINE_COLOR = "#8a94a6"
PROPOSED_COLOR = "#2f6fde"
TERMINAL_LEADS = 20  # leads that change stage, listed in the terminal
HTML_LEADS = 200  # and in the HTML report
CHART_RULES = 15  # rules in the contribution chart


def print_summary(report: WhatIf, console: Console) -> None:
    """The report as rich tables: changes, funnel, moves, leads, rules."""
    base, new = report.baseline, report.proposed
    console.print(
        f"[bold]What if[/bold] {new.rules_version} replaced {base.rules_version}: "
        f"{report.messages:,} messages, {report.leads:,} leads, as of {_moment(report)}"
    )
    if report.changes:
        console.print("Changes: " + "; ".join(report.changes))
    else:
        console.print("The rule sets do not differ.")
    funnel = Table(title="Funnel", title_justify="left")
    for column in ("", base.rules_version, new.rules_version, "change"):
        funnel.add_column(column, justify="left" if not column else "right")
    for figures in _funnel_rows(base, new):
        funnel.add_row(*figures)
    console.print(funnel)
    if report.moves:
        moves = Table(title="Leads that change stage", title_justify="left")
        moves.add_column("from > to")
        moves.add_column("leads", justify="right")
        for move, count in report.moves.items():
            moves.add_row(move, f"{count:,}")
        console.print(moves)
        leads = Table(title=f"The {TERMINAL_LEADS} that move most", title_justify="left")
        for column in ("lead", "stage", "fit", "engagement", "because of"):
            leads.add_column(column)
        for change in report.changed[:TERMINAL_LEADS]:
            leads.add_row(
                change.lead_id,
                f"{change.baseline} > {change.proposed}",
                _pair(change.fit),
                _pair(change.engagement),
                ", ".join(change.rules),
            )
        console.print(leads)
    else:
        console.print("No lead changes stage.")
    rules = Table(title="Rules that score differently", title_justify="left")
    for column in ("rule", "kind", "matched", "points", "points after", "change"):
        rules.add_column(column, justify="left" if column in ("rule", "kind") else "right")
    for row in report.rules:
        before = row.baseline.points if row.baseline else None
        after = row.proposed.points if row.proposed else None
        if before == after:
            continue
        matched = row.proposed or row.baseline
        assert matched is not None
        rules.add_row(
            row.rule_id, row.kind, f"{matched.matched:,}", _number(before), _number(after),
            _number(None if before is None or after is None else after - before),
        )  # fmt: skip
    if rules.row_count:
        console.print(rules)


def render_html(report: WhatIf) -> str:
    """The report as one self-contained HTML page."""
    base, new = report.baseline, report.proposed
    stages = [stage.value for stage in Stage]
    weeks = list(report.weeks)
    top_rules = sorted(
        report.rules,
        key=lambda row: -max(abs(_points(row.baseline)), abs(_points(row.proposed))),
    )[:CHART_RULES]
    charts = [
        _bars(
            "Leads per stage",
            stages,
            [(base.rules_version, [base.stages[s] for s in stages], BASELINE_COLOR),
             (new.rules_version, [new.stages[s] for s in stages], PROPOSED_COLOR)],
        ),
        _lines(f"Leads entering {Stage.MQL} per week", weeks, _weekly(report, Stage.MQL)),
        _lines(f"Leads entering {Stage.SQL} per week", weeks, _weekly(report, Stage.SQL)),
        _bars(
            "Fit score distribution (leads)",
            _bin_labels(report.fit_histogram.edges),
            [(base.rules_version, report.fit_histogram.baseline, BASELINE_COLOR),
             (new.rules_version, report.fit_histogram.proposed, PROPOSED_COLOR)],
        ),
        _bars(
            "Engagement score distribution (leads)",
            _bin_labels(report.engagement_histogram.edges),
            [(base.rules_version, report.engagement_histogram.baseline, BASELINE_COLOR),
             (new.rules_version, report.engagement_histogram.proposed, PROPOSED_COLOR)],
        ),
        _bars(
            "Points held per rule, over every lead",
            [row.rule_id for row in top_rules],
            [(base.rules_version, [_points(row.baseline) for row in top_rules], BASELINE_COLOR),
             (new.rules_version, [_points(row.proposed) for row in top_rules], PROPOSED_COLOR)],
        ),
    ]  # fmt: skip
    funnel = "".join(
        f"<tr><th>{escape(name)}</th><td>{old}</td><td>{now}</td><td>{change}</td></tr>"
        for name, old, now, change in _funnel_rows(base, new)
    )
    moves = "".join(
        f"<tr><td>{escape(move)}</td><td>{count:,}</td></tr>"
        for move, count in report.moves.items()
    )
    leads = "".join(
        f"<tr><td>{escape(c.lead_id)}</td><td>{c.baseline} &rarr; {c.proposed}</td>"
        f"<td>{_pair(c.fit)}</td><td>{_pair(c.engagement)}</td>"
        f"<td>{escape(', '.join(c.rules))}</td></tr>"
        for c in report.changed[:HTML_LEADS]
    )
    rules = "".join(
        f"<tr><td>{escape(row.rule_id)}</td><td>{row.kind}</td>"
        f"<td>{_figures(row.baseline)}</td><td>{_figures(row.proposed)}</td></tr>"
        for row in report.rules
    )
    changes = "".join(f"<li>{escape(line)}</li>" for line in report.changes) or (
        "<li>The rule sets do not differ.</li>"
    )
    more = len(report.changed) - HTML_LEADS
    title = f"What if {new.rules_version} replaced {base.rules_version}"
    return _PAGE.format(
        title=escape(title),
        summary=escape(_summary(report)),
        changes=changes,
        legend=_legend(base.rules_version, new.rules_version),
        charts="".join(f'<figure class="chart">{chart}</figure>' for chart in charts),
        base=escape(base.rules_version),
        new=escape(new.rules_version),
        funnel=funnel,
        moves=moves or '<tr><td colspan="2">No lead changes stage.</td></tr>',
        leads=leads or '<tr><td colspan="5">No lead changes stage.</td></tr>',
        more=f"<p>And {more:,} more (all of them in <code>--json</code>).</p>" if more > 0 else "",
        rules=rules,
    )


def _weekly(report: WhatIf, stage: Stage) -> list[tuple[str, list[float], str]]:
    """Per rule set, its transitions into `stage` each week, for a line chart."""
    sides = (("baseline", report.baseline, BASELINE_COLOR),
             ("proposed", report.proposed, PROPOSED_COLOR))  # fmt: skip
    return [
        (side.rules_version, [report.weeks[w][name].get(stage, 0) for w in report.weeks], color)
        for name, side, color in sides
    ]


def _summary(report: WhatIf) -> str:
    """The opening sentence: what the change does to the funnel, in plain words."""
    base, new = report.baseline, report.proposed
    moved = sum(report.moves.values())
    return (
        f"Replayed {report.messages:,} messages of {report.leads:,} leads, as of "
        f"{_moment(report)}. Under {new.rules_version}, {moved:,} leads end in another stage; "
        f"{new.mql_leads:,} leads reach mql ({_signed(new.mql_leads - base.mql_leads)}) and "
        f"{new.sql_leads:,} reach sql ({_signed(new.sql_leads - base.sql_leads)}); "
        f"mql-to-sql conversion {_share(base.mql_to_sql)} -> {_share(new.mql_to_sql)}."
    )


def _funnel_rows(base: Side, new: Side) -> list[tuple[str, str, str, str]]:
    """(figure, under the baseline, under the proposed rules, the change), as text."""
    counts = [(f"leads in {stage}", base.stages[stage], new.stages[stage]) for stage in base.stages]
    counts += [
        ("reached mql", base.mql_leads, new.mql_leads),
        ("reached sql", base.sql_leads, new.sql_leads),
    ]
    rows = [(name, f"{old:,}", f"{now:,}", _change(old, now)) for name, old, now in counts]
    old_share, new_share = base.mql_to_sql, new.mql_to_sql
    points = (
        ""
        if old_share is None or new_share is None
        else _change(round(100 * old_share, 1), round(100 * new_share, 1), " pt")
    )
    rows.append(("mql-to-sql conversion", _share(old_share), _share(new_share), points))
    rows.append(("transitions", f"{base.transitions:,}", f"{new.transitions:,}",
                 _change(base.transitions, new.transitions)))  # fmt: skip
    for name, old_median, new_median in (
        ("median fit", base.median_fit, new.median_fit),
        ("median engagement", base.median_engagement, new.median_engagement),
    ):
        rows.append((name, f"{old_median:g}", f"{new_median:g}", _change(old_median, new_median)))
    return rows


def _change(old: float, now: float, unit: str = "") -> str:
    return "" if old == now else f"{_signed(round(now - old, 2))}{unit}"


def _signed(value: float) -> str:
    return f"{value:+,g}" if value else "unchanged"


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _pair(values: tuple[float, float]) -> str:
    return f"{values[0]:g} > {values[1]:g}" if values[0] != values[1] else f"{values[0]:g}"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _points(figures: RuleFigures | None) -> float:
    return 0.0 if figures is None else figures.points


def _figures(figures: RuleFigures | None) -> str:
    if figures is None:
        return "-"
    return f"{figures.matched:,} matched, {_number(figures.points)} points"


def _moment(report: WhatIf) -> str:
    return "-" if report.as_of is None else report.as_of.strftime("%Y-%m-%d %H:%M UTC")


def _bin_labels(edges: list[float]) -> list[str]:
    return [f"{low:g}" for low in edges[:-1]]


def _legend(base: str, new: str) -> str:
    return (
        f'<p class="legend"><span style="background:{BASELINE_COLOR}"></span>{escape(base)} '
        f'(baseline) <span style="background:{PROPOSED_COLOR}"></span>{escape(new)} (proposed)</p>'
    )


# Charts: inline SVG, 640 x 260, axes and labels in the page's font.
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 640, 280, 72, 76, 28
LABEL_CHARS = 14


def _scale(series: Sequence[tuple[str, Sequence[float], str]]) -> tuple[float, float]:
    values = [v for _, vs, _ in series for v in vs]
    return min(0.0, *values, 0.0), max(1.0, *values, 1.0)


def _frame(title: str, low: float, high: float) -> list[str]:
    plot_h = HEIGHT - BOTTOM - TOP
    parts = [f'<text x="{LEFT}" y="16" class="title">{escape(title)}</text>']
    for i in range(5):
        value = low + (high - low) * i / 4
        y = TOP + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - 8}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">'
                     f"{value:,.0f}</text>")  # fmt: skip
    return parts


def _y(value: float, low: float, high: float) -> float:
    plot_h = HEIGHT - BOTTOM - TOP
    return TOP + plot_h - plot_h * (value - low) / (high - low)


def _label(x: float, text: str) -> str:
    y = HEIGHT - BOTTOM + 14
    short = text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "\u2026"
    return (f'<text x="{x:.1f}" y="{y}" class="axis" text-anchor="end" '
            f'transform="rotate(-35 {x:.1f} {y})">{escape(short)}<title>{escape(text)}</title>'
            "</text>")  # fmt: skip


def _svg(title: str, parts: list[str]) -> str:
    return (f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">'
            + "".join(parts) + "</svg>")  # fmt: skip


def _bars(
    title: str, categories: list[str], series: Sequence[tuple[str, Sequence[float], str]]
) -> str:
    low, high = _scale(series)
    parts = _frame(title, low, high)
    slot = (WIDTH - LEFT - 8) / max(1, len(categories))
    bar = slot * 0.8 / len(series)
    zero = _y(0.0, low, high)
    for index, category in enumerate(categories):
        x0 = LEFT + slot * index + slot * 0.1
        for number, (name, values, color) in enumerate(series):
            value = values[index]
            y = _y(value, low, high)
            parts.append(
                f'<rect x="{x0 + bar * number:.1f}" y="{min(y, zero):.1f}" width="{bar:.1f}" '
                f'height="{abs(zero - y):.1f}" fill="{color}"><title>{escape(name)}: '
                f"{escape(category)} {value:,g}</title></rect>"
            )
        parts.append(_label(x0 + slot * 0.45, category))
    return _svg(title, parts)


def _lines(
    title: str, categories: list[str], series: Sequence[tuple[str, Sequence[float], str]]
) -> str:
    low, high = _scale(series)
    parts = _frame(title, low, high)
    step = (WIDTH - LEFT - 16) / max(1, len(categories) - 1)
    every = max(1, len(categories) // 12)  # at most a dozen labels
    for name, values, color in series:
        points = " ".join(
            f"{LEFT + 4 + step * i:.1f},{_y(v, low, high):.1f}" for i, v in enumerate(values)
        )
        parts.append(f'<polyline points="{points}" fill="none" stroke="{color}" '
                     f'stroke-width="2"><title>{escape(name)}</title></polyline>')  # fmt: skip
    for i, category in enumerate(categories):
        if i % every == 0:
            parts.append(_label(LEFT + 4 + step * i, category))
    return _svg(title, parts)


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 1340px;
       padding: 0 1rem; color: #1d2330; }}
h1 {{ font-size: 1.5rem; margin-bottom: .25rem; }}
h2 {{ font-size: 1.1rem; margin-top: 2rem; }}
.summary {{ font-size: 1.05rem; max-width: 60rem; }}
.charts {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr));
          gap: 1rem; }}
.chart {{ margin: 0; border: 1px solid #dde2ea; border-radius: 6px; padding: .5rem; }}
svg {{ width: 100%; height: auto; }}
svg .title {{ font-size: 14px; font-weight: 600; fill: #1d2330; }}
svg .axis {{ font-size: 11px; fill: #5b6475; }}
svg .grid {{ stroke: #e6e9ef; }}
.legend span {{ display: inline-block; width: .9rem; height: .9rem; margin: 0 .3rem 0 .8rem;
               vertical-align: -2px; border-radius: 2px; }}
table {{ border-collapse: collapse; margin: .5rem 0; }}
th, td {{ text-align: left; padding: .25rem .8rem .25rem 0; border-bottom: 1px solid #e6e9ef; }}
td {{ font-variant-numeric: tabular-nums; }}
code {{ background: #f1f3f7; padding: 0 .2rem; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="summary" id="summary">{summary}</p>
<h2>What changed in the rules</h2>
<ul id="changes">{changes}</ul>
{legend}
<div class="charts" id="charts">{charts}</div>
<h2>Funnel</h2>
<table id="funnel"><tr><th></th><th>{base}</th><th>{new}</th><th>change</th></tr>{funnel}</table>
<h2>Leads that change stage</h2>
<table id="moves"><tr><th>from &rarr; to</th><th>leads</th></tr>{moves}</table>
<table id="leads"><tr><th>lead</th><th>stage</th><th>fit</th><th>engagement</th>
<th>because of</th></tr>{leads}</table>
{more}
<h2>Rules</h2>
<table id="rules"><tr><th>rule</th><th>kind</th><th>{base}</th><th>{new}</th></tr>{rules}</table>
</body>
</html>
"""
