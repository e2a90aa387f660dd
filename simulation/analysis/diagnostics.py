"""Diagnostics: the findings a strategist should act on, each with its figures.

Rules (thresholds are arguments of :func:`diagnose`):

- *high traffic, low conversion*: a channel with a large share of the reach whose
  conversions per customer reached stay low even under its most generous
  attribution model;
- *CPA above LTV*: loaded CAC above the projected lifetime value of the customers it
  brings (last-touch customers);
- *spend without customers*: a channel that spends and is nobody's last touch. Its
  most generous attribution model never excuses it: attribution cannot say what an
  awareness or retention channel causes, only a hold-out can (``distsim lift``);
- *lift* (given a lift result of the same scenario): each channel and programme judged
  on its incremental profit, 95% interval over paired replicates: losing money when
  the interval lies below 0, paying when above, unclear otherwise. A channel that pays
  by its lift is not called unprofitable by the attribution-based rules above, and one
  that loses money is never excused;
- *high churn* / *low LTV* by acquisition channel, against the all-channel average;
- *diminishing returns*: the marginal CAC of the last weeks well above the average
  CAC, or above LTV while the average is still below it;
- *capacity losses*: leads that went cold waiting for a capacity-limited channel,
  with the customers and margin they would have brought at the channel's close rate;
- *roll-out stalled*: a channel of ``[rollout]`` that never launched because the gate
  before it (validation days and conversions) never opened;
- *few conversions*: a channel's CAC and LTV resting on fewer than 30 simulated
  conversions (however many market customers they stand for).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from simulation.analysis.common import WORD_OF_MOUTH, channels, pooled
from simulation.analysis.economics import MIN_CUSTOMERS, marginal_cac, unit_economics

MIN_EVENTS = 30
"""Simulated conversions below which a channel's figures are flagged as resting on few."""


@dataclass
class Finding:
    kind: str
    channel: str
    title: str
    detail: str
    figures: dict[str, float] = field(default_factory=dict)
    severity: str = "warning"  # ok | warning | critical


KIND_TITLES = {
    "low_conversion": "High traffic, low conversion",
    "cpa_above_ltv": "CPA above LTV",
    "assist_only": "Spend without last-touch customers",
    "lift_loses": "Loses money by its lift",
    "lift_pays": "Pays by its lift",
    "lift_unclear": "Lift unclear",
    "rollout_stalled": "Roll-out stalled",
    "few_conversions": "Figures resting on few conversions",
    "high_churn": "High churn by acquisition channel",
    "low_ltv": "Low LTV by acquisition channel",
    "diminishing_returns": "Past the point of diminishing returns",
    "capacity_loss": "Capacity losses",
}


_COUNTS = {"simulated_conversions", "reached", "conversions_last_touch", "best_credit", "customers", "window_customers",
           "incremental_customers", "replicates", "validation_conversions", "won",
           "window_days", "leads_new", "leads_served", "leads_lost", "customers_lost",
           "active_at_end", "spend_days"}
_SHARES = {"reach_share", "monthly_churn", "average_monthly_churn", "lost_share", "close_rate"}
_RATIOS = {"ltv_cac", "ratio", "conversions_per_1000_reached", "all_channels_per_1000_reached"}


def figure_kind(key: str) -> str:
    """How a finding's figure is written: int, pct, ratio or money."""
    if key in _COUNTS:
        return "int"
    if key in _SHARES:
        return "pct"
    if key in _RATIOS:
        return "ratio"
    return "money"


def format_figure(x: float | None, kind: str = "money", *, missing: str = "n/a",
                  days_unit: bool = True, whole_from: float = float("inf")) -> str:
    """A figure as people read it: pct, int, ratio, days or money (whole units from
    ``whole_from`` up); the diagnostics and the report differ only in the options."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return missing
    if isinstance(x, float) and math.isinf(x):
        return "never" if kind == "days" else "∞"
    if kind == "pct":
        return f"{100 * x:.1f}%"
    if kind == "int":
        return f"{x:,.0f}"
    if kind == "ratio":
        return f"{x:.2f}"
    if kind == "days":
        return f"{x:,.0f} days" if days_unit else f"{x:,.0f}"
    return f"{x:,.2f}" if abs(x) < whole_from else f"{x:,.0f}"


_f = format_figure  # the diagnostics write figures with the defaults


def diagnose(ds: xr.Dataset, lift: xr.Dataset | None = None, *, traffic_share: float = 0.10,
             conversion_factor: float = 0.5, churn_factor: float = 1.5, ltv_factor: float = 0.5,
             marginal_factor: float = 1.5, window_days: int = 28, lost_share: float = 0.05,
             min_customers: int = MIN_CUSTOMERS) -> list[Finding]:
    """Every finding of the rules above for one run (a sweep is pooled first); with
    ``lift`` (a ``distsim lift`` result of the same scenario) the channels and
    programmes it measured are judged on what they caused."""
    ds = pooled(ds)
    econ = unit_economics(ds)
    names = channels(ds)
    verdicts = lift_verdicts(lift) if lift is not None else {}
    paying = {t for t, v in verdicts.items() if v["verdict"] == "pays"}
    findings: list[Finding] = []
    findings += _lift_findings(verdicts)
    findings += [f for f in _low_conversion(ds, names, traffic_share, conversion_factor)
                 if f.channel not in verdicts]
    findings += [f for f in _cpa_above_ltv(ds, econ, names, min_customers)
                 if not (f.channel in paying and f.kind == "cpa_above_ltv")
                 and not (f.channel in verdicts and f.kind == "assist_only")]
    findings += _churn_and_ltv(econ, names, churn_factor, ltv_factor, min_customers)
    findings += _diminishing(ds, econ, names, marginal_factor, window_days)
    findings += _capacity(ds, econ, names, lost_share)
    findings += _rollout_stalled(ds)
    findings += _few_conversions(econ, names, float(ds.attrs.get("scale", 1.0)))
    return findings


def lift_verdicts(lift: xr.Dataset) -> dict[str, dict]:
    """Per target of a lift result: incremental profit (mean, 95% interval) and the
    verdict "pays" (interval above 0), "loses" (below 0) or "unclear"."""
    from simulation.analysis.incrementality import figures

    out = {}
    for row in figures(lift):
        mean, low, high = row["incremental_profit"]
        n = row["replicates"]
        if n >= 2 and low > 0:
            verdict = "pays"
        elif n >= 2 and high < 0:
            verdict = "loses"
        else:
            verdict = "unclear"
        out[row["target"]] = {"verdict": verdict, "mean": mean, "low": low, "high": high,
                              "replicates": n, "customers": row["incremental_customers"][0],
                              "kind": row["kind"],
                              "projected": row["incremental_profit_projected"]}
    return out


UNPROFITABLE = frozenset({"cpa_above_ltv", "lift_loses"})
"""Findings that call a channel unprofitable."""
EXCUSING = frozenset({"lift_pays"})
"""Findings that say a channel pays."""


def contradictions(findings: list[Finding], verdicts: dict[str, dict]) -> list[Finding]:
    """The findings a lift result contradicts: a channel called unprofitable whose
    incremental profit lies above 0 (95% interval), or excused while it lies below."""
    return [f for f in findings
            if (f.kind in UNPROFITABLE and verdicts.get(f.channel, {}).get("verdict") == "pays")
            or (f.kind in EXCUSING and verdicts.get(f.channel, {}).get("verdict") == "loses")]


def _lift_findings(verdicts: dict[str, dict]) -> list[Finding]:
    out = []
    for target, v in verdicts.items():
        what = "programme" if v["kind"] == "programme" else (
            "set of channels" if v["kind"] == "all_channels" else "channel")
        interval = (f"95% interval {_f(v['low'], whole_from=0)} to "
                    f"{_f(v['high'], whole_from=0)}" if math.isfinite(v["low"])
                    else "one replicate: no interval")
        p_mean, p_low, p_high = v["projected"]
        beyond = (f"; with the projected value of the customers it causes, "
                  f"{_f(p_mean, whole_from=0)}"
                  + (f" ({_f(p_low, whole_from=0)} to {_f(p_high, whole_from=0)})"
                     if math.isfinite(p_low) else ""))
        figures = {"incremental_profit": v["mean"], "incremental_profit_low": v["low"],
                   "incremental_profit_high": v["high"], "incremental_customers": v["customers"],
                   "incremental_profit_projected": p_mean, "replicates": float(v["replicates"])}
        body = (f"the {what} {target} causes {_f(v['mean'], whole_from=0)} of profit in the "
                f"run ({interval}) and {_f(v['customers'], 'int')} customers{beyond}: the "
                "base run minus the run without it, on the same seeds")
        if v["verdict"] == "loses" and math.isfinite(p_low) and p_low > 0:
            # loses within the run, but the customers it causes are worth more later
            out.append(Finding("lift_loses", target, f"{target}: loses money in the run",
                               body + "; it costs more than it brings within the run, and "
                               "pays back after it if the projection holds.", figures))
        elif v["verdict"] == "loses":
            out.append(Finding("lift_loses", target, f"{target}: loses money", body
                               + "; it costs more than it brings.", figures, "critical"))
        elif v["verdict"] == "pays":
            out.append(Finding("lift_pays", target, f"{target}: pays", body + ".", figures,
                               "ok"))
        else:
            why = ("the interval includes 0: more replicates or a longer run would tell"
                   if v["replicates"] >= 2 else "one replicate cannot tell: run 3 or more")
            out.append(Finding("lift_unclear", target, f"{target}: unclear",
                               f"{body}; {why}.", figures))
    return out


def _rollout_stalled(ds: xr.Dataset) -> list[Finding]:
    from simulation.analysis.common import scenario_of

    rollout = scenario_of(ds).get("rollout", {})
    order = rollout.get("order", [])
    if not order or "running" not in ds:
        return []
    out = []
    for k, name in enumerate(order[1:], start=1):
        if name not in ds.channel.values or float(ds.running.sel(channel=name).sum()) > 0:
            continue
        prev = order[k - 1]
        ran = float(ds.running.sel(channel=prev).sum()) if prev in ds.channel.values else 0.0
        won = float(ds.conversions.sel(channel=prev).sum()) if prev in ds.channel.values else 0.0
        need = float(rollout.get("validation_conversions", 0))
        days = float(rollout.get("validation_days", 30))
        why = (f"{prev} won {_f(won, 'int')} customers of the {_f(need, 'int')} its gate asks"
               if won < need else f"{prev} ran {_f(ran, 'int')} of the {_f(days, 'int')} days "
               "its gate asks, or a guardrail paused it")
        out.append(Finding(
            "rollout_stalled", name, f"{name}: roll-out stalled",
            f"{name} never launched: the roll-out waits for {prev} to pass its validation "
            f"window, and {why}.",
            {"validation_conversions": need, "won": won}, "critical"))
        break  # the channels after it wait on it too
    return out


def _few_conversions(econ, names, scale: float, min_events: int = MIN_EVENTS) -> list[Finding]:
    """Figures resting on fewer than ``min_events`` simulated conversions: in market units
    they may look large (a conversion stands for ``scale`` people), but their noise is
    that of the few simulated ones."""
    out = []
    for ch in names:
        n = float(econ.customers.sel(channel=ch))
        simulated = n / scale
        if 0 < simulated < min_events:
            out.append(Finding(
                "few_conversions", ch, f"{ch}: few conversions",
                f"{ch}'s CAC, LTV and LTV/CAC rest on {_f(simulated, 'int')} simulated "
                f"conversions ({_f(n, 'int')} customers in the market): read them as rough; "
                "simulate more customers (--agents) or more replicates to steady them.",
                {"customers": n, "simulated_conversions": simulated}))
    return out


def _val(da: xr.DataArray, ch: str) -> float:
    return float(da.sel(channel=ch))


def _low_conversion(ds, names, traffic_share, factor) -> list[Finding]:
    if "unique_reached" not in ds:
        return []
    reached = ds.unique_reached
    total_reach = float(reached.sum())
    total_conv = float(ds.conversions.sum())
    if total_reach <= 0 or total_conv <= 0:
        return []
    overall = total_conv / total_reach
    best = ds.attributed_conversions.max("attribution_model")
    best_model = ds.attributed_conversions.idxmax("attribution_model")
    out = []
    for ch in names:
        r = _val(reached, ch)
        if ch == WORD_OF_MOUTH or r <= 0 or r / total_reach < traffic_share:
            continue
        credit = _val(best, ch)
        rate = credit / r
        if rate >= factor * overall:
            continue
        conv = float(ds.conversions.sel(channel=ch).sum())
        model = str(best_model.sel(channel=ch).values)
        out.append(Finding(
            "low_conversion", ch, f"{ch}: high traffic, low conversion",
            f"{ch} reached {_f(r, 'int')} customers ({_f(r / total_reach, 'pct')} of all reach) "
            f"but even its most generous attribution model ({model}) credits it only "
            f"{_f(credit, 'int')} conversions: {1000 * rate:.1f} per 1,000 reached against "
            f"{1000 * overall:.1f} across channels ({_f(conv, 'int')} as last touch).",
            {"reached": r, "reach_share": r / total_reach, "conversions_last_touch": conv,
             "best_credit": credit, "conversions_per_1000_reached": 1000 * rate,
             "all_channels_per_1000_reached": 1000 * overall}))
    return out


def _cpa_above_ltv(ds, econ, names, min_customers) -> list[Finding]:
    out = []
    for ch in names:
        e = econ.sel(channel=ch)
        n = float(e.customers)
        spend = float(e.spend)
        cac = float(e.cac_loaded)
        ltv = float(e.ltv_projected)
        if n == 0 and spend > 0:
            credit = ds.attributed_conversions.sel(channel=ch)
            best = float(credit.max())
            if best < 1:
                out.append(Finding(
                    "assist_only", ch, f"{ch}: spend without conversions",
                    f"{ch} cost {_f(spend)} and no attribution model credits it with a "
                    "conversion: it may act on customers already won (retention), or do "
                    "nothing; only a hold-out tells (distsim lift).",
                    {"spend": spend, "customers": 0.0}, "critical"))
                continue
            model = str(credit.idxmax().values)
            out.append(Finding(
                "assist_only", ch, f"{ch}: no last-touch customers",
                f"{ch} cost {_f(spend)} and is the last touch of no customer. Its most "
                f"generous attribution model ({model}) credits it {_f(best, 'int')} "
                "conversions, but attribution cannot tell whether it caused any of them: "
                "measure it with distsim lift.",
                {"spend": spend, "best_credit": best}))
            continue
        if n < min_customers or not cac > ltv:
            continue
        realised = float(e.ltv)
        out.append(Finding(
            "cpa_above_ltv", ch, f"{ch}: CAC above LTV",
            f"{ch} pays {_f(cac)} to acquire a customer (loaded CAC) who brings {_f(ltv)} of "
            f"margin over the projection horizon ({_f(realised)} realised in the run): LTV/CAC "
            f"{_f(float(e.ltv_cac), 'ratio')}, {_f(n, 'int')} customers, profit in the run "
            f"{_f(float(e.profit))}.",
            {"cac_loaded": cac, "ltv_projected": ltv, "ltv": realised,
             "ltv_cac": float(e.ltv_cac), "customers": n, "spend": spend,
             "profit": float(e.profit)},
            "critical" if cac > 1.5 * ltv else "warning"))
    return out


def _churn_and_ltv(econ, names, churn_factor, ltv_factor, min_customers) -> list[Finding]:
    n = econ.customers
    ok = n >= min_customers
    if int(ok.sum()) < 2:
        return []
    w = n.where(ok, 0.0)
    mean_monthly = float((econ.monthly_churn.fillna(0) * w).sum() / w.sum())
    ltv = econ.ltv_projected.where(ok)
    mean_ltv = float((ltv.fillna(0) * w).sum() / w.sum())
    out = []
    for ch in names:
        e = econ.sel(channel=ch)
        if float(e.customers) < min_customers:
            continue
        m = float(e.monthly_churn)
        if mean_monthly > 0 and m >= churn_factor * mean_monthly:
            out.append(Finding(
                "high_churn", ch, f"{ch}: high churn",
                f"customers acquired through {ch} churn at {_f(m, 'pct')} a month against "
                f"{_f(mean_monthly, 'pct')} on average ({m / mean_monthly:.1f}x); "
                f"{_f(float(e.active_at_end), 'int')} of {_f(float(e.customers), 'int')} "
                f"still active at the end.",
                {"monthly_churn": m, "average_monthly_churn": mean_monthly,
                 "customers": float(e.customers), "active_at_end": float(e.active_at_end)}))
        v = float(e.ltv_projected)
        if mean_ltv > 0 and v <= ltv_factor * mean_ltv:
            out.append(Finding(
                "low_ltv", ch, f"{ch}: low LTV",
                f"a customer acquired through {ch} is worth {_f(v)} (projected LTV) against "
                f"{_f(mean_ltv)} on average across channels ({v / mean_ltv:.2f}x).",
                {"ltv_projected": v, "average_ltv_projected": mean_ltv,
                 "customers": float(e.customers)}))
    return out


def _diminishing(ds, econ, names, factor, window_days) -> list[Finding]:
    m = marginal_cac(ds, window_days)
    out = []
    for ch in names:
        e = econ.sel(channel=ch)
        if float(e.spend) <= 0:
            continue
        avg = float(m.average_cac.sel(channel=ch))
        marg = float(m.marginal_cac.sel(channel=ch))
        wc = float(m.window_customers.sel(channel=ch))
        ltv = float(e.ltv_projected)
        if wc < 10 or not np.isfinite(marg) or not np.isfinite(avg) or avg <= 0:
            continue
        above = marg >= factor * avg
        crosses = marg > ltv >= avg
        if not (above or crosses):
            continue
        why = (f"the last {window_days} days' customers cost {_f(marg)} each (marginal CAC) "
               f"against {_f(avg)} on average ({marg / avg:.1f}x)")
        if crosses:
            why += f", above their projected LTV of {_f(ltv)}: more spend here loses money"
        out.append(Finding(
            "diminishing_returns", ch, f"{ch}: diminishing returns", f"{ch}: {why}.",
            {"marginal_cac": marg, "average_cac": avg, "ratio": marg / avg,
             "window_days": float(window_days), "window_customers": wc, "ltv_projected": ltv},
            "critical" if crosses else "warning"))
    return out


def _capacity(ds, econ, names, lost_share) -> list[Finding]:
    if "leads_lost" not in ds:
        return []
    out = []
    for ch in names:
        lost = float(ds.leads_lost.sel(channel=ch).sum())
        new = float(ds.leads_new.sel(channel=ch).sum())
        served = float(ds.leads_served.sel(channel=ch).sum())
        if lost <= 0 or new <= 0 or lost / new < lost_share:
            continue
        conv = float(ds.conversions.sel(channel=ch).sum())
        close = conv / served if served > 0 else 0.0
        customers_lost = lost * close
        ltv = float(econ.ltv_projected.sel(channel=ch))
        margin_lost = customers_lost * ltv if np.isfinite(ltv) else float("nan")
        out.append(Finding(
            "capacity_loss", ch, f"{ch}: leads lost to capacity",
            f"{ch} queued {_f(new, 'int')} leads, served {_f(served, 'int')} and lost "
            f"{_f(lost, 'int')} ({_f(lost / new, 'pct')}) that went cold waiting; at its close "
            f"rate of {_f(close, 'pct')} that is about {_f(customers_lost, 'int')} customers "
            f"and {_f(margin_lost)} of projected margin.",
            {"leads_new": new, "leads_served": served, "leads_lost": lost,
             "lost_share": lost / new, "close_rate": close, "customers_lost": customers_lost,
             "margin_lost": margin_lost},
            "critical" if lost / new >= 0.25 else "warning"))
    return out


def console_lines(findings: list[Finding]) -> list[str]:
    """Lines for the terminal, in rich markup (the findings' text escaped)."""
    from rich.markup import escape

    if not findings:
        return ["[bold]Diagnostics:[/] nothing to flag."]
    lines = [f"[bold]Diagnostics[/] ({len(findings)}):"]
    for f in findings:
        mark = {"critical": "[bold red]![/]", "ok": "[green]✓[/]"}.get(f.severity,
                                                                     "[yellow]•[/]")
        lines.append(f" {mark} [bold]{KIND_TITLES[f.kind]}[/] — {escape(f.detail)}")
    return lines
