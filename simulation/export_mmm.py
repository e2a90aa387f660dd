"""Data for marketing-mix models with the answer attached: ``distsim export-mmm``.

Analytics teams check a marketing-mix model (PyMC-Marketing, Meridian, Robyn) on data
whose true channel effects are known. A run of the simulator is such data: its daily
spend, reach and sales are what an MMM reads, and a ``distsim lift`` of the same
scenario, size and seeds holds each channel out on the same random draws, so the
channel's incremental new customers, orders and revenue over the run are known up to
the lift's replicates (exactly, for the replicate whose seed is the run's).

The export is three files: ``series.csv`` (a row per day, the layout MMM tools read),
``truth.csv`` (a row per held-out channel, and ``all_channels``) and ``README.md`` (a
data card). They are built in memory (:func:`build`) and written by the command through
:class:`simulation.outputs.OutputFiles`, all or nothing. A lift that is not of the run's
scenario, size and seeds is refused in one line (:func:`check`): its truth would be
another market's.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import pandas as pd
import xarray as xr

from simulation.analysis.common import WORD_OF_MOUTH, scenario_of, size_text
from simulation.lift import ALL_CHANNELS
from simulation.scenario import ScenarioError, scenario_from_dict, seasonal_factors

SERIES = "series.csv"
TRUTH = "truth.csv"
CARD = "README.md"
FIGURES = ("customers", "orders", "revenue")
"""The lift's figures the truth carries, as ``incremental_<figure>``: what an MMM of new
customers, orders or revenue estimates per channel."""
LEVEL = 0.95
CONTROLS = {
    "day_of_week": ("0-6", "weekday of the date, 0 = Monday"),
    "month": ("1-12", "month of the date"),
    "season_demand": ("multiplier", "[seasonality.demand] of the day: scales first orders "
                                    "and win-backs (1 without a calendar)"),
    "season_reach": ("multiplier", "[seasonality.reach] of the day: scales organic "
                                   "visitors (`fixed`) and list contacts (`list`)"),
    "season_media_price": ("multiplier", "[seasonality.media_price] of the day: scales CPM "
                                         "and CPC (a budget buys less reach on a dear day)"),
}
"""Control columns: the calendar the simulation itself applied, known exactly."""


@dataclass(frozen=True)
class Match:
    """How a lift goes with a result: the replicate that *is* the result's run (its seed
    is the result's), if any, and the lift's own seed (its replicate seeds derive from
    it)."""

    replicate: int | None
    lift_seed: int


@dataclass(frozen=True)
class MmmExport:
    """The three files, as text."""

    series: pd.DataFrame
    truth: pd.DataFrame
    card: str

    def files(self) -> dict[str, str]:
        """File name -> content, in the order they are written."""
        return {SERIES: _csv(self.series), TRUTH: _csv(self.truth), CARD: self.card}


# -- checks --------------------------------------------------------------------------------


def check(result: xr.Dataset, lift: xr.Dataset, result_name: str = "RESULT",
          lift_name: str = "--lift") -> Match:
    """Refuse, in one :class:`ScenarioError` line, a result that cannot be exported or a
    lift that is not of its scenario, size and seeds; else say which replicate it is."""
    if "stage_count" not in result or result.attrs.get("kind") == "lift":
        raise ScenarioError(result_name, "", "not a distsim run result")
    if set(result.stage_count.dims) != {"day", "stage"}:
        raise ScenarioError(result_name, "", "a sweep's combined result; export one run "
                            "(distsim run) with the lift of its scenario")
    data = scenario_of(result)
    if not data.get("simulation", {}).get("start_date"):
        raise ScenarioError(result_name, "simulation.start_date", "the run has no dates; "
                            "marketing-mix tools need them: run the scenario and its lift "
                            "with --set simulation.start_date=YYYY-MM-DD")
    if lift.attrs.get("kind") != "lift" or "target" not in lift.dims:
        raise ScenarioError(lift_name, "", "not a distsim lift result")
    theirs = scenario_of(lift)
    name, other = result.attrs.get("scenario_name"), lift.attrs.get("scenario_name")
    if name != other:
        raise ScenarioError(lift_name, "", f"a lift of '{other}', not of '{name}'")
    for key in ("agents", "days"):
        if int(lift.attrs.get(key, -1)) != int(result.attrs.get(key, -2)):
            raise ScenarioError(lift_name, "", f"measured at {key} = {lift.attrs.get(key)}, "
                                f"the run has {result.attrs.get(key)}; run the lift at the "
                                "run's size")
    size = theirs.get("market", {}).get("size")
    if size != data.get("market", {}).get("size"):
        raise ScenarioError(lift_name, "", f"measured on a market of {size} people, the run's "
                            f"has {data.get('market', {}).get('size')}")
    backend = lift.attrs.get("backend", "numba")
    if backend != result.attrs.get("backend", "numba"):
        raise ScenarioError(lift_name, "", f"measured on the {backend} backend, the run on "
                            f"{result.attrs.get('backend')}: the same seeds draw other "
                            "customers there")
    if _unseeded(data) != _unseeded(theirs):
        field = _first_difference(_unseeded(data), _unseeded(theirs))
        raise ScenarioError(lift_name, "", "a lift of other scenario settings than the run's "
                            f"(first difference: {field}; only the seed may differ)")
    if int(lift.attrs.get("lift_from_day", 0)) != 0:
        raise ScenarioError(lift_name, "", f"holds out from day {lift.attrs['lift_from_day']}; "
                            "a marketing-mix model estimates each channel's effect over the "
                            "whole series: run the lift from day 0")
    if not _channel_targets(lift):
        raise ScenarioError(lift_name, "", "holds out no channel (only programmes); run it "
                            "with --channels")
    seed = int(result.attrs["seed"])
    seeds = [int(s) for s in lift.replicate_seed.values]
    lift_seed = int(theirs.get("simulation", {}).get("seed", 0))
    if seed in seeds:
        return Match(seeds.index(seed), lift_seed)
    if seed == lift_seed:
        return Match(None, lift_seed)
    raise ScenarioError(lift_name, "", f"not of the run's seeds: the run has seed {seed}, the "
                        f"lift seed {lift_seed} (replicate seeds {', '.join(map(str, seeds))}); "
                        f"run the lift with --seed {seed}, or the run with --seed {seeds[0]}")


def _unseeded(data: dict) -> dict:
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    data.get("simulation", {}).pop("seed", None)
    return data


def _first_difference(a, b, path: str = "") -> str:
    """The dotted path of the first field where two scenario dicts differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else key)
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if x != y:
                label = x.get("name", i) if isinstance(x, dict) else i
                return _first_difference(x, y, f"{path}.{label}")
    return path or "the scenario"


def _channel_targets(lift: xr.Dataset) -> list[str]:
    kinds = [str(k) for k in lift.kind.values]
    return [str(t) for t, k in zip(lift.target.values, kinds, strict=True)
            if k in ("channel", "all_channels")]


# -- the files -----------------------------------------------------------------------------


def build(result: xr.Dataset, lift: xr.Dataset, result_name: str = "RESULT",
          lift_name: str = "--lift") -> MmmExport:
    """The export of ``result`` with the truth from ``lift`` (checked first)."""
    match = check(result, lift, result_name, lift_name)
    series = daily_series(result)
    truth = channel_truth(result, lift, match.replicate)
    return MmmExport(series, truth, data_card(result, lift, match, series, truth,
                                              result_name, lift_name))


def scenario_channels(result: xr.Dataset) -> list[str]:
    """The scenario's channels in the result (every one but word of mouth)."""
    return [str(c) for c in result.channel.values if str(c) != WORD_OF_MOUTH]


def daily_series(result: xr.Dataset) -> pd.DataFrame:
    """One row per day: date, spend and reach per channel, the outcomes, the controls."""
    days = result.sizes["day"]
    scenario = scenario_from_dict(scenario_of(result), "<result>")
    start = pd.Timestamp(scenario.simulation.start_date)
    dates = pd.date_range(start, periods=days, freq="D")
    cols: dict[str, object] = {"date": dates.strftime("%Y-%m-%d"),
                               "day": result.day.values.astype(int)}
    for c in scenario_channels(result):
        cols[f"spend_{c}"] = result.spend.sel(channel=c).values.astype(float)
    for c in map(str, result.channel.values):
        cols[f"reach_{c}"] = result.reached.sel(channel=c).values.astype(float)
    cols["new_customers"] = result.conversions.sum("channel").values.astype(float)
    cols["orders"] = result.orders.sum("channel").values.astype(float)
    cols["revenue"] = result.revenue.sum("channel").values.astype(float)
    cols["day_of_week"] = dates.day_of_week.values
    cols["month"] = dates.month.values
    factors = seasonal_factors(scenario, days)
    for name in ("demand", "reach", "media_price"):
        cols[f"season_{name}"] = factors[name]
    return pd.DataFrame(cols)


def channel_truth(result: xr.Dataset, lift: xr.Dataset,
                  replicate: int | None) -> pd.DataFrame:
    """One row per held-out channel, then ``all_channels``: the run's spend on it and
    each incremental figure's mean over the lift's replicates with its 95% t interval,
    and its value in the replicate that is the run (empty when none is)."""
    from simulation.sweep.combine import t_interval

    rows = []
    for target in _channel_targets(lift):
        sel = lift.sel(target=target)
        held = ([t for t in _channel_targets(lift) if t != ALL_CHANNELS]
                if target == ALL_CHANNELS else [target])
        spend = float(result.spend.sel(channel=held).sum())
        row = {"target": target, "kind": str(sel.kind.values), "channels": " ".join(held),
               "spend": spend}
        for fig in FIGURES:
            values = sel[f"incremental_{fig}"].values.astype(float)
            mean, low, high, n = t_interval(values, LEVEL)
            row["replicates"] = n
            row[f"incremental_{fig}_mean"] = mean
            row[f"incremental_{fig}_low"] = low
            row[f"incremental_{fig}_high"] = high
            row[f"incremental_{fig}_this_run"] = (float(values[replicate])
                                                  if replicate is not None else math.nan)
        row["revenue_per_spend_mean"] = (row["incremental_revenue_mean"] / spend
                                         if spend > 0 else math.nan)
        rows.append(row)
    order = ["target", "kind", "channels", "spend", "replicates"]
    frame = pd.DataFrame(rows)
    return frame[order + [c for c in frame.columns if c not in order]]


def _csv(frame: pd.DataFrame) -> str:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue()


# -- the data card -------------------------------------------------------------------------


def _money(x: float) -> str:
    return "–" if not math.isfinite(x) else f"{x:,.0f}"


def _pm(row, key: str) -> str:
    mean, low, high = row[f"{key}_mean"], row[f"{key}_low"], row[f"{key}_high"]
    if not (math.isfinite(low) and math.isfinite(high)):
        return _money(mean)
    return f"{_money(mean)} ± {_money((high - low) / 2)}"


def _channel_rows(result: xr.Dataset) -> list[str]:
    data = scenario_of(result)
    by_name = {c.get("name"): c for c in data.get("channels", [])}
    rows = []
    for c in map(str, result.channel.values):
        spend = float(result.spend.sel(channel=c).sum())
        media = float(result.media_spend.sel(channel=c).sum()) if "media_spend" in result \
            else spend
        reach = float(result.reached.sel(channel=c).sum())
        if c == WORD_OF_MOUTH:
            kind, model, role = ("word of mouth", "advocates", "not paid: caused by the other "
                                 "channels' customers; not a control (it is an outcome)")
        else:
            cfg = by_name.get(c, {})
            kind, model = cfg.get("kind", "?"), cfg.get("reach", {}).get("model", "?")
            if not cfg.get("enabled", True):
                role = "off for the whole run"
            elif media > 0:
                role = "paid media: a media column of the model"
            elif spend > 0:
                role = "not paid media: fixed cost only (a constant while it runs)"
            else:
                role = "not paid: no spend"
        rows.append(f"| `{c}` | {kind} | {model} | {_money(spend)} | {_money(media)} | "
                    f"{reach:,.0f} | {role} |")
    return rows


def data_card(result: xr.Dataset, lift: xr.Dataset, match: Match, series: pd.DataFrame,
              truth: pd.DataFrame, result_name: str, lift_name: str) -> str:
    """The README.md of the export: where the data comes from, every column, the truth,
    and how single-channel lifts compare with holding every channel out at once."""
    attrs = result.attrs
    days = result.sizes["day"]
    seeds = [int(s) for s in lift.replicate_seed.values]
    reps = len(seeds)
    name = attrs.get("scenario_name", "scenario")
    if match.replicate is not None:
        which = (f"The run's seed {attrs['seed']} is the lift's replicate {match.replicate}: "
                 "the `_this_run` columns are the exact truth of this series (the lift's base "
                 "run of that replicate is this run, bit for bit).")
    else:
        which = (f"The run's seed {attrs['seed']} is the lift's own seed; the lift's "
                 f"replicates ran on seeds derived from it, none of them this run, so "
                 "`_this_run` is empty: the mean is the expected effect, and this series is "
                 "one more draw around it. For the exact truth of a series, run it with "
                 f"`--seed {seeds[0]}` (replicate 0).")
    held = [t for t in truth.target if t != ALL_CHANNELS]
    skipped = [str(t) for t, k in zip(lift.target.values, lift.kind.values, strict=True)
               if str(k) == "programme"]
    totals = {"new customers": series.new_customers.sum(), "orders": series.orders.sum(),
              "revenue": series.revenue.sum(),
              "spend": sum(series[f"spend_{c}"].sum() for c in scenario_channels(result))}
    lines = [
        f"# Marketing-mix data with known truth: {name}",
        "",
        f"Written by `distsim export-mmm` (distsim {attrs.get('simulation_version', '?')}) "
        f"from the run `{result_name}` and the lift `{lift_name}`.",
        "",
        "## Where it comes from",
        "",
        f"- Scenario `{name}`: {size_text(attrs, days)} (scale "
        f"{float(attrs.get('scale', 1.0)):g}: people of the market per simulated customer), "
        f"{days} days from "
        f"{series.date.iloc[0]} to {series.date.iloc[-1]}, seed {attrs['seed']}, "
        f"{attrs.get('backend', 'numba')} backend.",
        f"- Truth: `distsim lift` of the same scenario, size and seeds, {reps} paired "
        f"replicate(s) on seeds {', '.join(map(str, seeds))} (derived from seed "
        f"{match.lift_seed}). Each held-out channel is switched off from day 0 "
        "(`channels.NAME.enabled = false`) and everything else runs on the same random "
        "draws: incremental X = X(base) − X(without the channel), over the whole market "
        "and run.",
        f"- {which}",
        "- Money is in the scenario's currency and counts in people of the market "
        "(market units), as in the result dataset.",
        "",
        "## `series.csv`: one row per day",
        "",
        "| column | unit | meaning |",
        "|---|---|---|",
        "| `date` | YYYY-MM-DD | the day's date (`simulation.start_date` + day) |",
        "| `day` | days | days since the start (0 = the first) |",
        "| `spend_<channel>` | currency | marketing spend that day: media (CPM budget, paid "
        "clicks, paid contacts) plus the channel's fixed daily cost while it runs |",
        "| `reach_<channel>` | people | people reached by the channel that day (the "
        "simulator counts reach, not impressions; `reach_word_of_mouth`: people who heard "
        "of the product from advocates) |",
        "| `new_customers` | people | first orders, all channels and word of mouth |",
        "| `orders` | orders | every order: first, repeat, renewals, win-backs |",
        "| `revenue` | currency | net revenue of the orders (returns refunded) |",
    ]
    for col, (unit, text) in CONTROLS.items():
        lines.append(f"| `{col}` | {unit} | {text} |")
    lines += [
        "",
        "Totals (the sums of the columns, equal to the result dataset's): "
        + ", ".join(f"{k} {_money(float(v))}" for k, v in totals.items()) + ".",
        "",
        "## Channels",
        "",
        "| channel | kind | reach model | spend | of which media | reach (person-days) | "
        "in a model |",
        "|---|---|---|---|---|---|---|",
        *_channel_rows(result),
        "",
        "Model the paid media channels as media. A channel with no media spend (organic "
        "visitors, a firm's email list, a retail partner paid by commission) has no spend "
        "an MMM can learn a response from: its reach column can enter as a control, or it "
        "sits in the baseline. Word of mouth is caused by the paid channels' customers: "
        "using its reach as a control would take credit away from them. Commissions and "
        "fees per order are not spend here (they follow sales).",
        "",
        "## `truth.csv`: what each channel caused",
        "",
        "One row per channel the lift held out, then `all_channels` (every listed channel "
        "off at once). Columns: `target`, `kind`, `channels` (those held out), `spend` (the "
        "run's spend on them), `replicates`, and for each of `customers` (new customers), "
        "`orders` and `revenue`: `incremental_<x>_mean` (mean over the replicates), "
        f"`_low` and `_high` (its {LEVEL:.0%} t interval; empty with one replicate) and "
        "`_this_run` (the replicate that is this run; empty if none); "
        "`revenue_per_spend_mean` is the incremental ROAS, mean incremental revenue / spend.",
        "",
        "| target | spend | new customers | orders | revenue | revenue this run | "
        "revenue / spend |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, row in truth.iterrows():
        roas = row["revenue_per_spend_mean"]
        lines.append(
            f"| `{row['target']}` | {_money(row['spend'])} | "
            f"{_pm(row, 'incremental_customers')} | {_pm(row, 'incremental_orders')} | "
            f"{_pm(row, 'incremental_revenue')} | {_money(row['incremental_revenue_this_run'])} "
            f"| {'–' if not math.isfinite(roas) else f'{roas:.2f}'} |")
    lines += ["", f"(mean ± half the {LEVEL:.0%} interval over the replicates)", ""]
    lines += _additivity(lift, held, totals)
    lines += [
        "",
        "## Reading it against a model",
        "",
        "- A marketing-mix model's contribution of a channel over the series is the "
        "revenue (or orders, or new customers) the channel added with every other channel "
        "running: the one-at-a-time hold-out, the channel rows of `truth.csv`.",
        "- An additive model's channel contributions add up to the total minus its "
        "baseline; the simulator's baseline is the run with every listed channel off, and "
        "what they add together is the `all_channels` row. Where the channels overlap "
        "(customers two channels reach, word of mouth that feeds on either's customers), "
        "the single lifts do not add up to it (*Do the channels' lifts add up?* above).",
        "- The truth is over the run: orders on later days by customers a channel won "
        "(repeat purchases, carry-over, word of mouth) count for the channel; value after "
        "the last day does not.",
        "- The intervals are simulation noise over seeds: a different draw of the same "
        "market. A model's error within them is no error.",
    ]
    if skipped:
        lines += ["", "Programmes the lift also held out (" + ", ".join(f"`{s}`" for s in skipped)
                  + ") are not channels of an MMM and are left out of `truth.csv`."]
    not_held = [c for c in scenario_channels(result)
                if c not in held and float(result.media_spend.sel(channel=c).sum()) > 0]
    if not_held:
        lines += ["", "Paid channels without a truth (the lift did not hold them out): "
                  + ", ".join(f"`{c}`" for c in not_held) + "."]
    return "\n".join(lines) + "\n"


def _additivity(lift: xr.Dataset, held: list[str], totals: dict) -> list[str]:
    """The sum of the single-channel lifts against ``all_channels``, per replicate."""
    if ALL_CHANNELS not in [str(t) for t in lift.target.values] or len(held) < 2:
        return ["One channel held out: no sum of channels to compare with holding every "
                "channel out."]
    lines = ["## Do the channels' lifts add up?", "",
             "| figure | sum of the channel lifts | all channels off at once | difference | "
             "baseline (all off) share of the total |",
             "|---|---|---|---|---|"]
    labels = {"customers": "new customers", "orders": "orders", "revenue": "revenue"}
    for fig in FIGURES:
        var = lift[f"incremental_{fig}"]
        single = float(var.sel(target=held).sum("target").mean())
        together = float(var.sel(target=ALL_CHANNELS).mean())
        total = float(totals[labels[fig]])
        diff = single - together
        share = (total - together) / total if total else math.nan
        lines.append(f"| {labels[fig]} | {_money(single)} | {_money(together)} | "
                     f"{_money(diff)} ({diff / together:+.0%} of all off) | "
                     f"{share:.0%} |" if together else
                     f"| {labels[fig]} | {_money(single)} | {_money(together)} | "
                     f"{_money(diff)} | – |")
    lines += ["", "Means over the replicates. A positive difference: the channels overlap "
              "(each claims customers another would have won); negative: they help each "
              "other (one makes customers aware, another converts them). The baseline share "
              "uses this run's total and the mean lift."]
    return lines



def size_estimate(result: xr.Dataset) -> int:
    """Bytes an export's largest file may take: a day's row of numbers, every day."""
    columns = 2 * result.sizes["channel"] + 12
    return result.sizes["day"] * columns * 24 + 16_384
