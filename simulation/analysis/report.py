"""One self-contained HTML report of a run or a sweep: summary tables, diagnostics and
every plot embedded as a base64 PNG, so the file can be mailed or shared as it is
(no external scripts, styles or images)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import xarray as xr

from simulation.analysis.attribution import MODEL_LABELS, attributed_revenue
from simulation.analysis.common import (
    channels,
    is_sweep,
    pooled,
    scenario_of,
    size_text,
    sweep_dims,
    title_of,
)
from simulation.analysis.diagnostics import (
    KIND_TITLES,
    Finding,
    diagnose,
    figure_kind,
    format_figure,
)
from simulation.analysis.economics import unit_economics
from simulation.analysis.kinds import DESCRIPTIONS, KPIS, RUN_KINDS
from simulation.analysis.plots import REQUIRES, PlotError, figure, png_bytes
from simulation.analysis.summary import definitions
from simulation.analysis.sweep import by_variant, interval, kpis
from simulation.outputs import write_file

MAX_DIAGNOSED = 12

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1200px;color:#222;line-height:1.45;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;
margin-top:2em}.meta{color:#666}table{border-collapse:collapse;margin:1em 0;font-size:.9em}
th,td{padding:.3em .7em;border-bottom:1px solid #e5e5e5;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f5f5f5}
tr:hover td{background:#fafafa}.neg{color:#c0392b}.card{display:inline-block;margin:.4em
1.2em .4em 0}.card b{display:block;font-size:1.4em}.finding{margin:.5em 0;padding:.5em .8em;
border-left:4px solid #f0ad4e;background:#fff8ec}.finding.critical{border-color:#d9534f;
background:#fdf0ef}.finding.ok{border-color:#5cb85c;background:#eef8ee}figure{margin:1.5em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{color:#555;font-size:.9em}.note{color:#666;font-size:.85em}
"""


def _esc(x) -> str:
    return html.escape(str(x), quote=True)


def _num(x, kind: str = "money") -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return _esc(x)
    return format_figure(x, kind, missing="–", days_unit=False, whole_from=1000)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td{' class=neg' if c.startswith('-') else ''}>{c}</td>" for c in r)
        + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(fig, caption: str) -> str:
    data = base64.b64encode(png_bytes(fig)).decode("ascii")
    return (f'<figure><img alt="{_esc(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>")


def _findings(findings: list[Finding]) -> str:
    if not findings:
        return "<p>Nothing to flag: no rule fired.</p>"
    out = []
    for f in findings:
        figures = ", ".join(f"{k.replace('_', ' ')} {_num(v, figure_kind(k))}"
                            for k, v in f.figures.items())
        out.append(f'<div class="finding {f.severity}"><b>{_esc(KIND_TITLES[f.kind])}</b> — '
                   f"{_esc(f.detail)}<br><span class=note>{_esc(figures)}</span></div>")
    return "\n".join(out)


def _run_sections(ds: xr.Dataset, lift: xr.Dataset | None = None) -> list[str]:
    parts = []
    econ = unit_economics(ds)
    names = channels(ds)
    revenue = float(ds.revenue.sum())
    gm = float(ds.gross_margin.sum())
    spend = float(ds.spend.sum())
    programmes = float(econ.programme_cost.sum())
    if "programme_fixed_cost" in ds:
        programmes += float(ds.programme_fixed_cost.sum())
    profit = gm - spend - programmes
    customers = float(ds.conversions.sum())
    active = float(ds.stage_count.isel(day=-1).sel(stage="active"))
    cards = [("revenue", _num(revenue)), ("gross margin", _num(gm)), ("marketing spend", _num(spend)),
             ("programme costs", _num(programmes)), ("profit", _num(profit)),
             ("new customers", _num(customers, "int")), ("active at the end", _num(active, "int"))]
    parts.append("<h2>Totals</h2>" + "".join(
        f'<div class="card">{_esc(k)}<b>{v}</b></div>' for k, v in cards))

    parts.append("<h2>Diagnostics</h2>" + _findings(diagnose(ds, lift)))
    if lift is not None:
        parts.append(_lift_section(lift))

    rows = []
    for ch in names:
        e = econ.sel(channel=ch)
        rows.append([_esc(ch), _num(e.spend), _num(e.customers, "int"), _num(e.cac),
                     _num(e.cac_loaded), _num(e.ltv), _num(e.ltv_projected),
                     _num(e.ltv_cac, "ratio"), _num(e.payback_days, "days"),
                     _num(e.monthly_churn, "pct"), _num(e.contribution), _num(e.profit),
                     _num(e.roas, "ratio")])
    years = econ.attrs["horizon_days"] / 365
    note = f"<p class=note>{_esc(definitions(ds))}. Payback: days until a new customer's " \
           "expected discounted margin covers the loaded CAC."
    if econ.attrs.get("estimated"):
        note += f" Estimated from the scenario: {_esc(econ.attrs['estimated'])}."
    parts.append("<h2>Unit economics by acquisition channel</h2>" + _table(
        ["channel", "spend", "new customers", "CAC", "CAC loaded", "LTV (in the run)",
         f"LTV projected ({years:g}y)", "LTV/CAC", "payback days", "monthly churn",
         "contribution", "profit", "ROAS"], rows) + note + "</p>")

    conv = ds.attributed_conversions
    rev = attributed_revenue(ds)
    models = [str(m) for m in conv.attribution_model.values]
    rows = [[_esc(MODEL_LABELS.get(m, m))] + [_num(conv.sel(attribution_model=m, channel=c), "int")
                                              for c in names]
            + [_num(conv.sel(attribution_model=m).sum(), "int")] for m in models]
    rows_rev = [[_esc(MODEL_LABELS.get(m, m))] + [_num(rev.sel(attribution_model=m, channel=c))
                                                  for c in names] for m in models]
    method = rev.attrs.get("method", "measured")
    half_life = scenario_of(ds).get("attribution", {}).get("half_life_days")
    basis = ("<p class=note>Rule-based models credit each conversion from the customer's first "
             "touch and last four touches" + (f"; time decay halves a touch's weight every "
                                               f"{_num(half_life, 'ratio')} days" if half_life
                                               else "") + "; Markov credits in proportion to "
             "removal effects of the first-order journey transition matrix (all journeys, "
             "converting or not).</p>")
    parts.append("<h2>Attribution</h2>" + basis + "<p>Conversions credited to each channel:</p>"
                 + _table(["model", *names, "total"], rows)
                 + "<p>Revenue of those conversions credited"
                 + (f" <span class=note>({_esc(method)})</span>" if method != "measured" else "")
                 + ":</p>" + _table(["model", *names], rows_rev))

    figs = [_plot(ds, kind) for kind in RUN_KINDS]
    parts.append("<h2>Plots</h2>" + "\n".join(figs))
    return parts


def _plot(ds: xr.Dataset, kind: str) -> str:
    try:
        return _img(figure(ds, kind), f"{kind}: {DESCRIPTIONS[kind]}")
    except PlotError as exc:
        return f"<p class=note>{_esc(kind)}: not drawn: {_esc(exc)}</p>"


def _variant_slices(ds: xr.Dataset) -> list[tuple[str, xr.Dataset]]:
    """(label, runs of that variant) for every combination of the sweep dimensions."""
    dims = sweep_dims(ds)
    if not dims:
        return [("run", ds)]
    stacked = ds.stack(_combo=dims)
    labels = [str(v) for v in by_variant(kpis(ds)["profit"]).variant.values]
    return [(labels[i], stacked.isel(_combo=i).drop_vars(["_combo", *dims], errors="ignore"))
            for i in range(stacked.sizes["_combo"])]


def verdict(ds: xr.Dataset) -> str:
    """How sure the highest mean profit is the best (P(best)) and whether the optimum may
    lie beyond the range swept: the sweep summary's sentence and warnings, as paragraphs.

    The report ranks by profit, so its verdict is on profit whatever the experiment's
    objective (``distsim sweep`` prints the objective's).
    """
    from simulation.sweep.combine import summarise
    from simulation.sweep.command import best_line, flips_line

    summary = summarise(ds, "profit")
    lines = [f"<p>{_esc(best_line(summary))}.</p>"]
    if summary.flips:
        lines.append(f"<p>{_esc(flips_line(summary))}.</p>")
    lines += [f"<p class=note>warning: {_esc(w)}.</p>" for w in summary.warnings]
    return "".join(lines)


def _sweep_sections(ds: xr.Dataset) -> list[str]:
    parts = []
    k = kpis(ds)
    table = {name: interval(by_variant(k[name])) for name in KPIS}
    labels = [str(v) for v in table["profit"].variant.values]
    reps = int(ds.sizes.get("replicate", 1))
    rows = []
    for i, label in enumerate(labels):
        row = [_esc(label)]
        for name in ("profit", "revenue", "customers", "cac", "ltv_cac", "active_at_end"):
            t = table[name].isel(variant=i)
            kind = "ratio" if name == "ltv_cac" else ("int" if name in ("customers",
                                                                         "active_at_end") else "money")
            cell = _num(t["mean"], kind)
            if reps > 1 and np.isfinite(float(t["low"])):
                cell += f" <span class=note>[{_num(t['low'], kind)}, {_num(t['high'], kind)}]</span>"
            row.append(cell)
        rows.append(row)
    best = labels[int(np.nanargmax(table["profit"]["mean"].values))]
    parts.append(
        "<h2>Variants</h2>"
        + f"<p>Mean over {reps} replicate(s)" + (", 95% confidence interval in brackets"
                                                  if reps > 1 else "")
        + f". Highest mean profit: <b>{_esc(best)}</b>.</p>" + verdict(ds)
        + _table(["variant", "profit", "revenue", "new customers", "blended CAC",
                  "LTV/CAC (realised)", "active at the end"], rows))
    figs = [_plot(ds, "variants")]
    if len(sweep_dims(ds)) >= 2:
        figs.append(_plot(ds, "heatmap"))
    parts.append("<h2>Plots</h2>" + "\n".join(figs))
    diag = []
    order = np.argsort(-np.nan_to_num(table["profit"]["mean"].values, nan=-np.inf))
    slices = _variant_slices(ds)
    for i in order[:MAX_DIAGNOSED]:
        label, sub = slices[i]
        diag.append(f"<h3>{_esc(label)}</h3>" + _findings(diagnose(sub)))
    more = (f" The {MAX_DIAGNOSED} most profitable of {len(slices)} variants."
            if len(slices) > MAX_DIAGNOSED else "")
    parts.append("<h2>Diagnostics by variant</h2><p class=note>Each variant's replicates "
                 f"pooled, most profitable first.{more}</p>" + "\n".join(diag))
    best_ds = dict(_variant_slices(ds))[best]
    parts.append(f"<h2>Best variant in detail: {_esc(best)}</h2>"
                 "<p class=note>Replicates pooled (means).</p>")
    parts += _run_sections(pooled(best_ds))[2:]  # its unit economics, attribution and plots
    return parts


def _lift_section(lift: xr.Dataset) -> str:
    """What each hold-out caused (``distsim lift``), beside what attribution credits."""
    from simulation.analysis.incrementality import figures, lift_figure

    def pm(triple, kind: str = "money") -> str:
        mean, low, high = triple
        text = _num(mean, kind)
        return text + (f" ({_num(low, kind)} to {_num(high, kind)})" if np.isfinite(low) else "")

    rows = []
    for r in figures(lift):
        credit = ("–" if not np.isfinite(r["credit_low"]) else
                  f"{_num(r['credit_low'], 'int')} – {_num(r['credit_high'], 'int')}")
        rows.append([_esc(r["target"]), _esc(r["kind"]), pm(r["incremental_customers"], "int"),
                     pm(r["incremental_revenue"]), pm(r["incremental_profit"]),
                     pm(r["incremental_profit_projected"]),
                     "none" if not np.isfinite(r["icac"]) else _num(r["icac"]),
                     _num(r["iroas"], "ratio"), credit])
    note = (f"<p class=note>Incremental = base run minus the run with the target held out "
            f"from day {int(lift.attrs.get('lift_from_day', 0))}, on the same seeds, over the "
            f"whole market and run ({size_text(lift.attrs, int(lift.attrs['days']))}, the "
            f"run's size); mean (95% interval) over "
            f"{int(lift.attrs.get('replicates', 1))} paired replicates. iCAC = incremental "
            "cost (media, fixed, programme costs, commissions and fees) / incremental "
            "customers, 'none' when the interval of incremental customers includes 0. "
            "Hold-outs overlap, so single lifts need not add up to all_channels'.</p>")
    return ("<h2>Incrementality: hold-outs</h2>" + _table(
        ["target", "kind", "customers", "revenue", "profit", "profit projected", "iCAC",
         "iROAS", "attributed customers"], rows) + note
        + _img(lift_figure(lift), "incremental profit and customers per hold-out"))


def render(ds: xr.Dataset, source: str = "", lift: xr.Dataset | None = None) -> str:
    """The report as one HTML string (a run's with a lift result: diagnostics read
    beside it, and a section of what each hold-out caused)."""
    missing = [v for v in (*REQUIRES["economics"], "attributed_conversions") if v not in ds]
    if missing:
        raise PlotError(f"a report needs {', '.join(missing)}, which this result does not keep")
    sweep = is_sweep(ds)
    title = (f"Sweep report — {ds.attrs.get('scenario_name', 'sweep')}" if sweep
             else f"Run report — {title_of(ds)}")
    meta = []
    for key in ("scenario_name", "agents", "days", "seed", "backend", "simulation_version"):
        if key in ds.attrs:
            meta.append(f"{key.replace('_', ' ')}: {_esc(ds.attrs[key])}")
    if sweep:
        meta.append("swept: " + ", ".join(f"{_esc(d)} ({ds.sizes[d]})" for d in sweep_dims(ds)))
        meta.append(f"replicates: {ds.sizes.get('replicate', 1)}")
    if source:
        meta.append(f"source: {_esc(source)}")
    body = _sweep_sections(ds) if sweep else _run_sections(ds, lift)
    return ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
            f"<title>{_esc(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{_esc(title)}</h1><p class=meta>{' · '.join(meta)}</p>"
            + "\n".join(body) + "</body></html>")


def write_report(ds: xr.Dataset, out: str | Path, source: str = "") -> Path:
    """Render the report and write it, all or nothing."""
    return write_file(out, render(ds, source))
