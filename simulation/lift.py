"""Incrementality: what a channel or a programme *caused*, from paired hold-outs.

Attribution says who touched the customers who bought; it cannot say who would have
bought anyway. A simulator can answer that exactly: run the same market again with
the channel switched off (``channels.NAME.enabled = false``, or a programme's
``enabled``) from day 0 or, as a scheduled change, from day D, on the same seeds,
and take the difference. Every random draw is keyed by (seed, day, customer,
decision, channel), so the hold-out and the base share every draw the channel does
not touch: the difference is the channel's, not noise (a channel with no effect has
a lift of exactly 0 in customers, orders and revenue).

The runs go through the sweep runner (a variant per target, ``base`` the scenario as
is, replicates paired by seed), so ``--jobs`` and ``--scheduler`` work as for sweeps.
Incremental X = X(base) - X(hold-out), over the whole market and the whole run.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from simulation.scenario import Scenario, ScenarioError

BASE = "base"
ALL_CHANNELS = "all_channels"
INCREMENTAL = ("customers", "orders", "revenue", "contribution", "profit", "profit_projected",
               "cost")
"""Market figures whose base - hold-out difference the result keeps, as ``incremental_X``."""
DEFINITIONS = {
    "incremental_customers": ("customers", "new customers the target caused: base - hold-out"),
    "incremental_orders": ("orders", "orders the target caused (all customers' orders)"),
    "incremental_revenue": ("currency", "net revenue the target caused"),
    "incremental_contribution": ("currency", "contribution (gross margin - media spend - "
                                 "programme costs) the target caused"),
    "incremental_profit": ("currency", "profit the target caused, its own costs included: "
                           "negative when it costs more than it brings"),
    "incremental_profit_projected": ("currency", "incremental_profit plus the projected "
                                     "value beyond the run of the customers it caused "
                                     "(ltv_projected - ltv per customer, by channel)"),
    "incremental_cost": ("currency", "costs the target caused: media, fixed and programme "
                         "costs, and the commissions and order fees of the orders"),
    "icac": ("currency per customer", "incremental CAC: incremental_cost / "
             "incremental_customers"),
    "iroas": ("ratio", "incremental ROAS: incremental_revenue / incremental_cost"),
}


def programmes() -> list[str]:
    """Post-purchase programmes that have an ``enabled`` switch, by their table names."""
    from simulation.scenario import PostPurchaseConfig

    out = []
    for name, info in PostPurchaseConfig.model_fields.items():
        fields = getattr(info.annotation, "model_fields", {})
        if "enabled" in fields:
            out.append(name)
    return out


@dataclass(frozen=True)
class Target:
    name: str
    kind: str  # "channel", "programme" or "all_channels"
    switches: tuple[str, ...]  # the enabled paths set to false


def targets(scenario: Scenario, channels: list[str] | None, programme_names: list[str] | None,
            source: str = "command line") -> list[Target]:
    """The hold-outs: each listed channel (default: every enabled channel, unless only
    programmes are listed), each listed programme, and ``all_channels`` when more than one
    channel is held out."""
    enabled = [c.name for c in scenario.channels if c.enabled]
    known = {c.name for c in scenario.channels}
    if channels is None:  # every enabled channel, unless only programmes were asked for
        chosen = [] if programme_names else enabled
    else:
        chosen = channels
    for name in chosen:
        if name not in known:
            raise ScenarioError(source, "--channels", f"no channel named '{name}' (have "
                                f"{', '.join(sorted(known)) or 'none'})")
        if name not in enabled:
            raise ScenarioError(source, "--channels", f"channel '{name}' is not enabled: "
                                "there is nothing to hold out")
    if len(set(chosen)) != len(chosen):
        raise ScenarioError(source, "--channels", "a channel is listed twice")
    out = [Target(n, "channel", (f"channels.{n}.enabled",)) for n in chosen]
    available = programmes()
    for name in programme_names or []:
        if name not in available:
            raise ScenarioError(source, "--programmes", f"no programme named '{name}' (have "
                                f"{', '.join(available)})")
        if not getattr(scenario.post_purchase, name).enabled:
            raise ScenarioError(source, "--programmes", f"programme '{name}' is not enabled "
                                f"in the scenario (post_purchase.{name}.enabled)")
        if name in known:
            raise ScenarioError(source, "--programmes", f"'{name}' names both a channel and "
                                "a programme")
        out.append(Target(name, "programme", (f"post_purchase.{name}.enabled",)))
    if len(chosen) > 1:
        out.append(Target(ALL_CHANNELS, "all_channels",
                          tuple(f"channels.{n}.enabled" for n in chosen)))
    if not out:
        raise ScenarioError(source, "--channels", "nothing to hold out (no enabled channel "
                            "and no programme listed)")
    for t in out:
        if t.name == BASE:
            raise ScenarioError(source, "--channels", f"'{BASE}' names the base run; rename "
                                "the channel to measure its lift")
    return out


def experiment(scenario: Scenario, hold_outs: list[Target], from_day: int, replicates: int,
               source: str = "<lift>"):
    """The sweep that measures the lifts: the base and a hold-out per target, paired."""
    from simulation.sweep.experiment import experiment_from_dict

    days = scenario.simulation.days
    if not 0 <= from_day < days:
        raise ScenarioError(source, "--from-day", f"must be a day of the run (0 to {days - 1})")
    variants = [{"name": BASE}]
    for t in hold_outs:
        off = {path: False for path in t.switches}
        if from_day == 0:
            variants.append({"name": t.name, "set": off})
        else:  # a scheduled change, after the scenario's own
            changes = [c.model_dump(mode="json") for c in scenario.changes]
            changes.append({"day": from_day, "set": off})
            variants.append({"name": t.name, "set": {"changes": changes}})
    data = {"name": f"lift of {scenario.name}", "base": "<scenario>",
            "seed": scenario.simulation.seed, "replicates": replicates, "variants": variants,
            "objective": "profit"}
    return experiment_from_dict(data, source=source, base=scenario)


def lift_dataset(combined: xr.Dataset, hold_outs: list[Target], from_day: int) -> xr.Dataset:
    """The lift result (docs/contracts.md) from the combined base and hold-out runs."""
    from simulation.analysis.economics import unit_economics

    market = unit_economics(combined, market=True).squeeze("channel", drop=True)
    channels = unit_economics(combined)
    beyond = (channels.customers * (channels.ltv_projected - channels.ltv)).fillna(0.0)
    programme_costs = combined.programme_cost.sum(("day", "channel"))
    if "programme_fixed_cost" in combined:
        programme_costs = programme_costs + combined.programme_fixed_cost.sum("day")
    figures = {
        "customers": market.customers,
        "orders": combined.orders.sum(("day", "channel")),
        "revenue": market.revenue,
        "contribution": market.contribution,
        "profit": market.profit,
        "profit_projected": market.profit + beyond.sum("channel"),
        # everything the target may add or save: media, fixed, programme costs, and the
        # commissions and order fees its customers' orders pay
        "cost": (market.spend + programme_costs
                 + combined.commission.sum(("day", "channel"))
                 + combined.order_fees.sum(("day", "channel"))),
    }
    names = [t.name for t in hold_outs]
    data = {}
    for key in INCREMENTAL:
        value = figures[key].astype(float)
        data[f"incremental_{key}"] = (value.sel(variant=BASE) - value.sel(variant=names)).rename(
            variant="target")
    with np.errstate(divide="ignore", invalid="ignore"):
        data["icac"] = data["incremental_cost"] / data["incremental_customers"]
        data["iroas"] = data["incremental_revenue"] / data["incremental_cost"]
    out = xr.Dataset(data).transpose("target", "replicate", ...)  # as docs/contracts.md
    base = combined.sel(variant=BASE)
    credit = base.attributed_conversions.mean("replicate")
    rows = [credit.sel(channel=t.name).values if t.kind == "channel"
            else np.full(credit.sizes["attribution_model"], np.nan) for t in hold_outs]
    out["attributed_conversions"] = (("target", "attribution_model"), np.array(rows))
    out["kind"] = ("target", np.array([t.kind for t in hold_outs], dtype=object))
    out = out.assign_coords(target=np.array(names, dtype=object),
                            attribution_model=credit.attribution_model.values)
    out = out.drop_vars([c for c in out.coords if c not in ("target", "replicate",
                                                           "replicate_seed",
                                                           "attribution_model")])
    for name, (units, text) in DEFINITIONS.items():
        out[name].attrs.update(units=units, description=text)
    out["attributed_conversions"].attrs.update(
        units="customers", description="the base run's conversions credited to the target "
                                        "channel by each attribution model (mean over "
                                        "replicates; NaN for other targets)")
    keep = ("scenario", "scenario_name", "agents", "days", "seed", "simulation_version",
            "backend")
    out.attrs = {k: v for k, v in combined.attrs.items() if k in keep}
    out.attrs.update(lift_from_day=int(from_day), replicates=int(combined.sizes["replicate"]),
                     kind="lift")
    return out


@dataclass(frozen=True)
class LiftPlan:
    """What a lift runs: its hold-outs and the sweep that pairs them with the base."""

    hold_outs: list[Target]
    experiment: object  # simulation.sweep.experiment.Experiment
    from_day: int


def plan(scenario: Scenario, channels: list[str] | None = None,
         programme_names: list[str] | None = None, from_day: int = 0, replicates: int = 3,
         source: str = "command line") -> LiftPlan:
    """Validate a lift and lay it out, before anything runs."""
    hold_outs = targets(scenario, channels, programme_names, source)
    return LiftPlan(hold_outs, experiment(scenario, hold_outs, from_day, replicates, source),
                    from_day)


def measure(lift: LiftPlan, *, jobs: int = 1, scheduler=None, threads: int | None = None,
            progress=None, workdir: str | Path | None = None) -> tuple[xr.Dataset, xr.Dataset]:
    """Run ``lift``: the lift dataset and the base runs (a dataset over ``replicate``,
    for diagnostics beside the lift).

    The runs are kept in a temporary folder (inside ``workdir`` when given) that is
    removed when this returns, whatever happens.
    """
    from simulation.sweep.runner import run_sweep

    where = tempfile.mkdtemp(prefix=".lift-runs.", dir=workdir)
    try:
        result = run_sweep(lift.experiment, where, jobs=jobs, scheduler=scheduler,
                           threads=threads, progress=progress, keep_workers=False)
        base = result.combined.sel(variant=BASE, drop=True)
        return lift_dataset(result.combined, lift.hold_outs, lift.from_day), base
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(where)


def run_lift(scenario: Scenario, *, channels: list[str] | None = None,
             programme_names: list[str] | None = None, from_day: int = 0,
             replicates: int = 3, source: str = "command line", **run) -> tuple[xr.Dataset,
                                                                                 xr.Dataset]:
    """Hold each target out on the same seeds as the base (:func:`plan`, then
    :func:`measure` with ``run``'s options: ``jobs``, ``scheduler``, ``threads``,
    ``progress``, ``workdir``)."""
    return measure(plan(scenario, channels, programme_names, from_day, replicates, source),
                   **run)
