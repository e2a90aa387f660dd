"""Reading a controlled test (:mod:`simulation.abtest`): the stopping rule's two readings,
the fixed-horizon z-test beside them, their error rates, and the power plot.

The rule, as strategists write it, runs a test "at least two weeks or until 100
conversions", then picks the arm with the higher conversion rate. It reads two ways:

- ``later``: stop on the first day that is both past ``min_days`` days and has
  ``min_conversions`` conversions in each arm (the later of the two);
- ``first``: stop on the first day that is past ``min_days`` days or has
  ``min_conversions`` conversions in each arm (whichever comes first).

A test that never meets its condition stops at the run's last day (``stopped`` = 0).

The **conversion rate** of an arm is its first orders so far over its customers (every
customer assigned to the arm, exposed or not: intention to treat). Per exposed customer
would let a change of reach (an affinity, a cap) move the denominator as well as the
numerator; the exposed counts are kept in the dataset for that reading.

The **true effect** of an effect size is the difference of expected conversion rates,
treatment minus control, at the end of the run: the mean over replicates of the arms'
full-run rates (0 by construction for the null, multiplier 0, where both arms obey the
same rules). The **truly better arm** is the one its sign favours.

The **z-test** is the two-proportion pooled z-test at a fixed horizon H (two-sided,
``alpha``), which picks an arm only when it rejects. H is matched to each reading of the
rule: the first day on which the z-test's power at the middle effect size, in closed form
from the replicates' mean rates and the arms' sizes (:func:`ztest_power`), reaches the
rule's measured power there, at most 0.99 (the whole run when it never does:
``horizon_matched`` 0).
"""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import xarray as xr
from scipy.stats import norm

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ARMS = ("control", "treatment")
"""The arms, in the order of the dataset's ``arm`` coordinate."""
READINGS = ("later", "first")
MAX_TARGET = 0.99
"""The highest power a z-test horizon is matched to: a rule right in every replicate has a
measured power of 1, which no fixed horizon reaches exactly."""
METHODS = ("rule_later", "rule_first", "ztest_later", "ztest_first")
"""The decision procedures compared: each reading of the rule, and the z-test whose
horizon is matched to it."""


def stop_day(cum: np.ndarray, min_days: int, min_conversions: float,
             reading: str) -> tuple[np.ndarray, np.ndarray]:
    """The day (index) each test stops, and whether its condition was met.

    ``cum[..., arm, day]`` are cumulative conversions per arm; ``min_days`` days have
    passed at the end of day index ``min_days - 1``. ``reading`` is ``later`` (both
    conditions) or ``first`` (either). A test whose condition never holds stops on the
    last day with ``met`` False."""
    days = cum.shape[-1]
    enough = cum.min(axis=-2) >= min_conversions
    long_enough = np.arange(days) + 1 >= min_days
    if reading == "later":
        cond = enough & long_enough
    elif reading == "first":
        cond = enough | long_enough
    else:
        raise ValueError(f"unknown reading {reading!r} (have {', '.join(READINGS)})")
    met = cond.any(axis=-1)
    return np.where(met, cond.argmax(axis=-1), days - 1), met


def pick(rate_control: np.ndarray, rate_treatment: np.ndarray) -> np.ndarray:
    """+1 where the treatment's rate is higher, -1 where the control's is, 0 on a tie."""
    return np.sign(rate_treatment - rate_control).astype(np.int8)


def z_statistic(x_c, n_c, x_t, n_t) -> np.ndarray:
    """Pooled two-proportion z statistic of the treatment's rate minus the control's (0
    where both arms have no conversions or all converted)."""
    x_c, n_c, x_t, n_t = (np.asarray(a, float) for a in (x_c, n_c, x_t, n_t))
    pooled = (x_c + x_t) / (n_c + n_t)
    se = np.sqrt(pooled * (1.0 - pooled) * (1.0 / n_c + 1.0 / n_t))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (x_t / n_t - x_c / n_c) / se
    return np.where(se > 0, z, 0.0)


def ztest_power(p_c, p_t, n_c, n_t, alpha: float = 0.05) -> np.ndarray:
    """Power of the two-sided pooled two-proportion z-test at true rates ``p_c``, ``p_t``
    with ``n_c``, ``n_t`` customers (normal approximation): the chance that it rejects,
    in either direction."""
    p_c, p_t, n_c, n_t = (np.asarray(a, float) for a in (p_c, p_t, n_c, n_t))
    z = norm.ppf(1.0 - alpha / 2.0)
    pooled = (p_c * n_c + p_t * n_t) / (n_c + n_t)
    se0 = np.sqrt(pooled * (1.0 - pooled) * (1.0 / n_c + 1.0 / n_t))
    se1 = np.sqrt(p_c * (1.0 - p_c) / n_c + p_t * (1.0 - p_t) / n_t)
    d = p_t - p_c
    with np.errstate(divide="ignore", invalid="ignore"):
        power = norm.cdf((d - z * se0) / se1) + norm.cdf((-d - z * se0) / se1)
    return np.where(se1 > 0, power, 0.0)


def _shares(decision: np.ndarray, better: np.ndarray) -> dict[str, np.ndarray]:
    """Per (procedure, effect): picks of each arm, of the better one (power) and of the worse
    one; NaN for power and wrong where no arm is better (the null)."""
    b = better[None, :, None]
    has = np.broadcast_to(b != 0, decision.shape)
    with np.errstate(invalid="ignore"):
        power = np.where(has, decision == b, np.nan).mean(axis=-1)
        wrong = np.where(has, decision == -b, np.nan).mean(axis=-1)
    return {"picks_treatment": (decision == 1).mean(axis=-1),
            "picks_control": (decision == -1).mean(axis=-1), "power": power, "wrong": wrong}


def evaluate(conversions: np.ndarray, exposed: np.ndarray, size: np.ndarray, test,
             attrs: dict) -> xr.Dataset:
    """The abtest dataset from the arms' daily counts (effect, replicate, arm, day) and
    sizes (effect, replicate, arm), for the plan ``test`` (:class:`simulation.abtest.AbtestPlan`:
    its effects, seeds, rule and alpha), with ``attrs``."""
    n_eff, reps, _, days = conversions.shape
    cum = conversions.cumsum(axis=-1)
    n = size[..., None].astype(float)
    rate = cum / n  # (effect, replicate, arm, day)
    final = rate[:, :, 1, -1] - rate[:, :, 0, -1]
    null = np.array(test.effects) == 0.0
    true_effect = np.where(null, 0.0, final.mean(axis=1))
    se = (final.std(axis=1, ddof=1) / math.sqrt(reps) if reps > 1
          else np.full(n_eff, np.nan))
    better = np.sign(true_effect).astype(np.int8)

    decision = np.zeros((len(METHODS), n_eff, reps), np.int8)
    days_run = np.zeros((len(METHODS), n_eff, reps), np.int64)
    stopped = np.ones((len(METHODS), n_eff, reps), np.int8)
    horizon = np.full(len(METHODS), np.nan)
    matched = np.full(len(METHODS), np.nan)
    mean_rate = rate.mean(axis=1)  # (effect, arm, day)
    mean_size = size.mean(axis=1).astype(float)  # (effect, arm)
    curve = ztest_power(mean_rate[:, 0, :], mean_rate[:, 1, :], mean_size[:, 0, None],
                        mean_size[:, 1, None], test.alpha)  # (effect, day)
    z_all = z_statistic(cum[:, :, 0], n[:, :, 0], cum[:, :, 1], n[:, :, 1])  # (eff, rep, day)
    crit = norm.ppf(1.0 - test.alpha / 2.0)
    mid = test.middle
    for k, reading in enumerate(READINGS):
        stop, met = stop_day(cum, test.min_days, test.min_conversions, reading)
        at = stop[..., None, None]
        r = np.take_along_axis(rate, np.broadcast_to(at, (*stop.shape, 2, 1)), axis=-1)[..., 0]
        decision[k] = pick(r[..., 0], r[..., 1])
        days_run[k] = stop + 1
        stopped[k] = met
        target = (min((decision[k, mid] == better[mid]).mean(), MAX_TARGET)
                  if better[mid] != 0 else np.nan)
        reach = np.flatnonzero(curve[mid] >= target) if np.isfinite(target) else []
        h = int(reach[0]) + 1 if len(reach) else days
        j = len(READINGS) + k
        horizon[j] = h
        matched[j] = 1.0 if len(reach) else 0.0
        z = z_all[:, :, h - 1]
        decision[j] = np.where(np.abs(z) > crit, np.sign(z), 0).astype(np.int8)
        days_run[j] = h
    shares = _shares(decision, better)
    dims = ("procedure", "effect")
    ds = xr.Dataset(
        {
            "conversions": (("effect", "replicate", "arm", "day"), conversions),
            "exposed": (("effect", "replicate", "arm", "day"), exposed),
            "arm_size": (("effect", "replicate", "arm"), size),
            "value": ("effect", np.array(test.values)),
            "true_effect": ("effect", true_effect),
            "true_effect_se": ("effect", se),
            "decision": (("procedure", "effect", "replicate"), decision),
            "days_run": (("procedure", "effect", "replicate"), days_run),
            "stopped": (("procedure", "effect", "replicate"), stopped),
            **{name: (dims, v) for name, v in shares.items()},
            "mean_days": (dims, days_run.mean(axis=-1)),
            "horizon": ("procedure", horizon),
            "horizon_matched": ("procedure", matched),
            "ztest_power_curve": (("effect", "day"), curve),
        },
        coords={"effect": np.array(test.effects), "replicate": np.arange(reps),
                "replicate_seed": ("replicate", np.array(test.seeds, np.int64)),
                "arm": list(ARMS), "day": np.arange(days), "procedure": list(METHODS)},
    )
    for name, (unit, text) in DESCRIPTIONS.items():
        ds[name].attrs.update(units=unit, description=text)
    ds.attrs = attrs
    return ds


DESCRIPTIONS = {
    "conversions": ("customers", "first orders of the arm's customers that day"),
    "exposed": ("customers", "the arm's customers touched for the first time that day (any "
                             "channel, word of mouth included)"),
    "arm_size": ("customers", "customers assigned to the arm (a keyed half of each segment)"),
    "value": ("", "the changed field's value in the treatment arm at each effect size"),
    "true_effect": ("rate", "treatment minus control conversion rate (first orders per "
                            "customer of the arm) at the end of the run, mean over replicates; "
                            "0 for the null (multiplier 0)"),
    "true_effect_se": ("rate", "standard error of true_effect over the replicates"),
    "decision": ("", "the arm picked: +1 treatment, -1 control, 0 none (a tie, or the z-test "
                     "not rejecting)"),
    "days_run": ("days", "days the test ran before deciding"),
    "stopped": ("", "1 where the rule's condition was met within the run (else it decided on "
                    "the last day); 1 for z-tests"),
    "picks_treatment": ("share", "share of replicates that picked the treatment"),
    "picks_control": ("share", "share of replicates that picked the control"),
    "power": ("share", "share of replicates that picked the truly better arm (NaN at the null)"),
    "wrong": ("share", "share of replicates that picked the truly worse arm (NaN at the null)"),
    "mean_days": ("days", "mean days the test ran"),
    "horizon": ("days", "the z-test's fixed horizon (NaN for the rules)"),
    "horizon_matched": ("", "1 where the z-test reaches the rule's power at the middle effect "
                            "within the run (else the horizon is the whole run)"),
    "ztest_power_curve": ("share", "the z-test's power by horizon (closed form, from the "
                                   "replicates' mean rates)"),
}

STYLE = {"rule_later": ("#1f77b4", "-", "o", "rule, later of 14 days and 100 conversions"),
         "rule_first": ("#ff7f0e", "-", "s", "rule, first of 14 days or 100 conversions"),
         "ztest_later": ("#1f77b4", "--", "^", "z-test matched to 'later'"),
         "ztest_first": ("#ff7f0e", "--", "v", "z-test matched to 'first'")}


def _label(ds: xr.Dataset, method: str) -> str:
    text = STYLE[method][3]
    text = text.replace("14 days", f"{int(ds.attrs['min_days'])} days").replace(
        "100 conversions", f"{ds.attrs['min_conversions']:g} conversions")
    if method.startswith("ztest"):
        days = int(ds.horizon.sel(procedure=method))
        matched = "horizon_matched" not in ds or bool(ds.horizon_matched.sel(procedure=method))
        text += f" (H = {days} days)" if matched else f" (H = the run, {days} days: unmatched)"
    return text


def power_figure(ds: xr.Dataset):
    """Power (picks of the truly better arm) and days to decide against the true effect,
    for both readings of the rule and the matched z-tests."""
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.8))
    order = np.argsort(ds.true_effect.values, kind="stable")
    x = ds.true_effect.values[order] * 100.0
    for m in METHODS:
        colour, line, marker, _ = STYLE[m]
        power = ds.power.sel(procedure=m).values[order]
        wrong = ds.wrong.sel(procedure=m).values[order]
        ax.plot(x, power, line, color=colour, marker=marker, label=_label(ds, m))
        ax.plot(x, wrong, ":", color=colour, marker=marker, alpha=0.5, markersize=4)
        bx.plot(x, ds.mean_days.sel(procedure=m).values[order], line, color=colour, marker=marker)
    ax.axhline(1.0, color="black", lw=0.5)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("true effect (percentage points of conversion rate)")
    ax.set_ylabel("share of tests picking the better arm (dotted: the worse)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="center right")
    bx.set_xlabel("true effect (percentage points of conversion rate)")
    bx.set_ylabel("mean days to decide")
    bx.grid(True, alpha=0.3)
    base, value = ds.attrs["change_base"], ds.attrs["change_value"]
    fig.suptitle(f"A/B test of {ds.attrs['change_path']} (control {base:g}, treatment "
                 f"{base:g} + M x ({value:g} - {base:g})), {ds.attrs['scenario_name']}: "
                 f"{int(ds.attrs['agents']):,} customers, {int(ds.attrs['replicates'])} "
                 f"replicates, z-test alpha {ds.attrs['alpha']:g}", fontsize=10)
    fig.tight_layout()
    return fig


def power_png(ds: xr.Dataset) -> bytes:
    from simulation.analysis.plots import png_bytes

    return png_bytes(power_figure(ds))


def abtest_table(ds: xr.Dataset):
    """The console table of ``distsim abtest``: per effect size and procedure, picks of the
    better and worse arm (or of each arm at the null) and days to decide."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(
        f"{ds.attrs['scenario_name']}: A/B test of {ds.attrs['change_path']}, "
        f"{int(ds.attrs['replicates'])} replicates of {int(ds.attrs['agents']):,} customers"))
    table.add_column("effect (x change)", justify="right")
    table.add_column("value", justify="right")
    table.add_column("true effect (pp)", justify="right")
    for m in METHODS:
        table.add_column(escape(m.replace("_", " ")), justify="right")
    for e in range(ds.sizes["effect"]):
        sel = ds.isel(effect=e)
        te = float(sel.true_effect) * 100
        se = float(sel.true_effect_se) * 100
        cells = []
        for m in METHODS:
            s = sel.sel(procedure=m)
            if np.isfinite(float(s.power)):
                text = f"{float(s.power):.0%} / {float(s.wrong):.0%}"
            else:
                text = f"T {float(s.picks_treatment):.0%} C {float(s.picks_control):.0%}"
            cells.append(f"{text}, {float(s.mean_days):.1f} d")
        table.add_row(f"{float(sel.effect):g}", f"{float(sel.value):.4g}",
                      f"{te:+.3f} ± {se:.3f}" if np.isfinite(se) else f"{te:+.3f}", *cells)
    table.caption = ("better / worse arm picked, mean days; at the null (effect 0): share "
                     "picking the treatment (T) and the control (C). Conversion rate: first "
                     "orders per customer of the arm. z-test horizons (the days a "
                     "fixed-horizon z-test needs to match the rule's power at the middle "
                     "effect): " + ", ".join(_horizon(ds, m) for m in METHODS
                                             if m.startswith("ztest")))
    return table


def _horizon(ds: xr.Dataset, method: str) -> str:
    """A z-test's horizon, saying so when the run was too short for it to match the rule."""
    days = int(ds.horizon.sel(procedure=method))
    if "horizon_matched" in ds and not bool(ds.horizon_matched.sel(procedure=method)):
        return f"{method} not within the run's {days} d (it never matches the rule's power)"
    return f"{method} {days} d"
