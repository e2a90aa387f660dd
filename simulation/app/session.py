"""What the app does with a scenario, apart from drawing it: the knobs a strategist
turns, a run that reports its progress and can be stopped, the comparison of a run with
the one before it, and the files to download.

Kept free of Solara so that every piece is tested without a browser, and so that the
page (:mod:`simulation.app.page`) holds only layout.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import xarray as xr

from simulation.analysis.summary import format_figure
from simulation.scenario import Scenario, ScenarioError, resolve_size, with_overrides

EXAMPLES = Path(__file__).resolve().parents[2] / "scenarios"
"""The shipped example scenarios (present in a source checkout, the way the app is run)."""

SCENARIO_ENV = "DISTSIM_APP_SCENARIO"
"""The scenario file ``distsim app SCENARIO.toml`` opens first (else the first example)."""

AGENTS_ENV = "DISTSIM_APP_AGENTS"
"""``distsim app --agents``: the sample the page starts from (a quick first run)."""

PROGRAMMES = ("onboarding", "tracking", "reminders", "feedback", "community", "outreach")
"""The post-purchase programmes the app switches on and off (``post_purchase.<name>.enabled``)."""

PLOTS = (("funnel", "Funnel"), ("economics", "Economics"), ("attribution", "Attribution"),
         ("dashboard", "Weekly dashboard"))
"""The plots of a run the app shows, in tab order: (kind, tab label)."""

MAX_AGENTS = 2_000_000
"""The most customers the app simulates: a run of a few minutes at most on a laptop; the
command line has no such cap."""


class Cancelled(Exception):
    """The user stopped the run."""


def examples() -> dict[str, Path]:
    """The example scenarios by name (file stem), sorted; empty outside a checkout."""
    return {p.stem: p for p in sorted(EXAMPLES.glob("*.toml"))} if EXAMPLES.is_dir() else {}


@dataclass(frozen=True)
class Knob:
    """One setting the app lets the user change: its dotted path in the scenario (as
    ``--set`` takes it), a label, its kind (``int``, ``money``, ``switch``), the
    scenario's own value, its group on the page and a note the page adds to the label
    (what the file's value means)."""

    path: str
    label: str
    kind: str
    value: float | int | bool
    group: str
    note: str = ""

    @property
    def title(self) -> str:
        """The label the page shows: with its note."""
        return f"{self.label} ({self.note})" if self.note else self.label


def knobs(scenario: Scenario) -> list[Knob]:
    """The settings a strategist moves first: the run's size and seed, the price, each
    channel's budget and switch, and the post-purchase programmes."""
    sim = scenario.simulation
    out = [
        Knob("simulation.agents", "customers simulated", "int", sim.agents, "run"),
        Knob("simulation.days", "days", "int", sim.days, "run"),
        Knob("simulation.seed", "seed", "int", sim.seed, "run"),
        Knob("product.price", "price", "money", scenario.product.price, "product"),
    ]
    for ch in scenario.channels:
        out.append(Knob(f"channels.{ch.name}.enabled", ch.name, "switch", ch.enabled,
                        "channels"))
        if ch.reach.model in ("cpm", "cpc") or ch.daily_budget > 0:
            kind = ch.schedule.kind
            moved = "" if kind == "constant" else f"at launch; {kind} schedule"
            out.append(Knob(f"channels.{ch.name}.daily_budget", f"{ch.name} budget a day",
                            "money", ch.daily_budget, "channels", moved))
    for name in PROGRAMMES:
        programme = getattr(scenario.post_purchase, name)
        costs = [v for k, v in programme.model_dump().items() if "cost" in k]
        free = "no cost set in the file" if costs and not any(costs) else ""
        out.append(Knob(f"post_purchase.{name}.enabled", name, "switch", programme.enabled,
                        "programmes", free))
    return out


def edited(scenario: Scenario, values: dict[str, float | int | bool],
           source: str = "app") -> Scenario:
    """``scenario`` with the knobs' ``values`` (by path) that differ from its own applied
    and validated: a bad value raises :class:`~simulation.scenario.ScenarioError` naming
    the field (in ``source``, the file's name). ``simulation.*`` goes through
    :func:`resolve_size`, so that fewer customers simulate the same market."""
    own = {k.path: k.value for k in knobs(scenario)}
    changes = {p: v for p, v in values.items() if p in own and v != own[p]}
    size = {p.removeprefix("simulation."): changes.pop(p) for p in list(changes)
            if p.startswith("simulation.")}
    if "agents" in size and size["agents"] > MAX_AGENTS:
        raise ScenarioError(source, "simulation.agents",
                            f"at most {MAX_AGENTS:,} in the app (use distsim run for more)")
    out = with_overrides(scenario, changes, source) if changes else scenario
    return resolve_size(out, source=source, **size) if size else out


@dataclass
class Outcome:
    """A finished run as the page shows it: the result, its plots (PNG bytes by kind),
    the channel rows and totals of the summary, and the scenario it ran."""

    scenario: Scenario
    ds: xr.Dataset
    plots: dict[str, bytes]
    rows: list[dict]
    totals: dict
    seconds: float
    source: str = ""
    label: str = ""
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    findings: list[tuple[str, str]] = field(default_factory=list)


_PYPLOT = threading.Lock()
"""pyplot keeps one global list of figures: browser sessions draw one at a time."""

_ONE_RUN = threading.Lock()
"""Browser sessions simulate one at a time: each run already uses every core, and numba's
fallback threading layer (workqueue, where neither OpenMP nor TBB is found) aborts the
process when two threads launch parallel kernels at once."""


def simulate(scenario: Scenario, progress: Callable[[int, int], None] | None = None,
             stop: Callable[[], bool] | None = None, threads: int | None = None,
             waiting: Callable[[], None] | None = None) -> Outcome:
    """Run ``scenario`` (numba backend) and draw what the page shows. ``progress(day,
    days)`` is called after each day; when ``stop()`` turns true the run ends with
    :class:`Cancelled` at the next day. While another session's run goes on, this one
    waits for it (``waiting()`` is called once), and may be stopped meanwhile."""
    import time

    import simulation
    from simulation.analysis.diagnostics import KIND_TITLES, diagnose
    from simulation.analysis.plots import PlotError, plot_bytes
    from simulation.analysis.summary import channel_summary, totals
    from simulation.scenario import scenario_warnings

    def each_day(day: int, days: int) -> None:
        if stop is not None and stop():
            raise Cancelled
        if progress is not None:
            progress(day, days)

    told = False
    while not _ONE_RUN.acquire(timeout=0.2):
        if stop is not None and stop():
            raise Cancelled
        if waiting is not None and not told:
            waiting()
            told = True
    try:
        start = time.perf_counter()
        ds = simulation.run(scenario, progress=each_day, threads=threads)
        seconds = time.perf_counter() - start
    finally:
        _ONE_RUN.release()
    plots, problems = {}, []
    with _PYPLOT:
        for kind, _ in PLOTS:
            if stop is not None and stop():
                raise Cancelled
            try:
                plots[kind] = plot_bytes(ds, kind)
            except PlotError as exc:  # a result without what the plot needs
                problems.append(f"{kind}: {exc}")
    return Outcome(scenario, ds, plots, channel_summary(ds), totals(ds), seconds,
                   problems=problems, warnings=scenario_warnings(scenario),
                   findings=[(f.severity, f"{KIND_TITLES[f.kind]}: {f.detail}")
                             for f in diagnose(ds)])


KEY_FIGURES = (("customers", "new customers"), ("active_at_end", "active at the end"),
               ("revenue", "revenue"), ("spend", "media and channel spend"),
               ("programmes", "programmes"), ("profit", "profit"))
"""The totals the comparison with the previous run shows: (key of ``totals``, label)."""


def compare(current: Outcome, previous: Outcome | None) -> list[dict]:
    """One row per key figure and per channel's new customers and CAC: this run, the
    previous run and the change. Without a previous run the previous column is empty."""
    rows = []
    for key, label in KEY_FIGURES:
        rows.append(_row(label, current.totals[key],
                         None if previous is None else previous.totals[key], key,
                         standard_error(current.ds, key)))
    before = {} if previous is None else {r["channel"]: r for r in previous.rows}
    for r in current.rows:
        old = before.get(r["channel"])
        rows.append(_row(f"{r['channel']}: new customers", r["customers"],
                         None if old is None else old["customers"], "customers",
                         standard_error(current.ds, "customers", r["channel"])))
        rows.append(_row(f"{r['channel']}: CAC", r["cac"],
                         None if old is None else old["cac"], "cac"))
    return rows


def describe(scenario: Scenario, values: dict, source: str) -> str:
    """What a run is: the file and the knobs moved from the file's values."""
    own = {k.path: k for k in knobs(scenario)}
    moved = [f"{own[p].label} {_plain(own[p].value)} → {_plain(v)}"
             for p, v in values.items() if p in own and v != own[p].value]
    return f"{source}" + (f", {', '.join(moved)}" if moved else ", as in the file")


def _plain(v) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    return f"{v:,g}" if isinstance(v, float) else f"{v:,}"


def noise_note(current: Outcome, previous: Outcome) -> str:
    """Whether the change between two runs comes from the edit or partly from a new draw:
    runs of the same seed and sample draw the same customers and the same chances, so
    what differs between them is what the edit caused in that sample."""
    a, b = current.ds.attrs, previous.ds.attrs
    if current.source != previous.source:
        return (f"The previous run is of another file ({previous.source}): the change is "
                "not one edit's effect.")
    if (a["seed"], a["agents"]) == (b["seed"], b["agents"]):
        return (f"Both runs drew the same {int(a['agents']):,} customers (seed {a['seed']}): "
                "the change comes from the edits, not from a new draw of customers. Each "
                "figure is still the sample's estimate of the market's (± its standard error); "
                "a larger sample measures the change more precisely.")
    return ("The runs differ in seed or sample size: part of the change is sampling noise; "
            "keep both fixed to read an edit's effect.")


def standard_error(ds: xr.Dataset, key: str, channel: str | None = None) -> float | None:
    """The sample's standard error of a figure the result carries one for, else None.
    Profit's is the gross margin's: its costs are the firm's decisions, not draws."""
    key = "gross_margin" if key == "profit" else key
    if channel is None:
        if "standard_error_total" not in ds or key not in ds.figure.values:
            return None
        return float(ds.standard_error_total.sel(figure=key))
    if "standard_error" not in ds or key not in ds.figure.values:
        return None
    return float(ds.standard_error.sel(figure=key, channel=channel))


def plus_minus(se: float | None) -> str:
    """" ± SE" for a standard error the sample gave (none, nan or 0: nothing)."""
    return f" ± {se:,.0f}" if se is not None and math.isfinite(se) and se > 0 else ""


def _row(label: str, now, before, key: str, se: float | None = None) -> dict:
    change = "" if before is None else _change(now, before, key)
    return {"figure": label, "this run": format_figure(key, now) + plus_minus(se),
            "previous run": "" if before is None else format_figure(key, before),
            "change": change}


def _change(now, before, key: str) -> str:
    if not all(map(math.isfinite, (now, before))):  # no customers (∞), none to divide (nan)
        if now == before or (math.isnan(now) and math.isnan(before)):
            return ""
        if math.isinf(now):
            return "no customers now"
        if math.isinf(before):
            return "had no customers"
        return "nothing to divide now" if math.isnan(now) else "had nothing to divide"
    diff = now - before
    if diff == 0:
        return "same"
    sign = "+" if diff > 0 else "−"
    text = f"{sign}{format_figure(key, abs(diff))}"
    if before:
        text += f" ({sign}{abs(diff) / abs(before):.0%})"
    return text


def result_bytes(outcome: Outcome) -> bytes:
    """The run's result file (NetCDF), as ``distsim run --out`` writes it."""
    from simulation.io import netcdf_bytes

    return netcdf_bytes(outcome.ds)


def scenario_bytes(scenario: Scenario) -> bytes:
    """The scenario as a TOML file that ``distsim run`` reproduces the run from."""
    return scenario.to_toml().encode()
