"""Comparing the runs of a sweep: key figures per run, means and confidence intervals
over replicates, variant labels for the swept parameters.

A sweep's combined dataset holds the run variables with one dimension per swept
parameter or named variant, plus ``replicate``. Replicates share their customers
across variants (common random numbers), so differences between variants are the
strategy's; the interval here is the plain t interval of each variant's mean.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.special import stdtrit

from simulation.analysis.common import DRAW, REPLICATE, point_axis_labels, sweep_dims
from simulation.analysis.economics import unit_economics
from simulation.analysis.kinds import KPIS  # name -> (label, units)


def kpis(ds: xr.Dataset) -> xr.Dataset:
    """One value per run of each key figure (sweep and replicate dimensions kept): the
    whole market's outcomes, as :func:`~simulation.analysis.economics.unit_economics`
    defines them for a channel."""
    m = unit_economics(ds, market=True).squeeze("channel", drop=True)
    out = xr.Dataset({
        "profit": m.profit,
        "revenue": m.revenue,
        "customers": m.customers,
        "cac": m.cac,
        "ltv": m.ltv,
        "ltv_cac": m.ltv_cac,
        "ltv_projected": m.ltv_projected,
        "cac_loaded": m.cac_loaded,
        "roas": m.roas,
        "active_at_end": ds.stage_count.isel(day=-1).sel(stage="active", drop=True),
    })
    for name, (label, units) in KPIS.items():
        out[name].attrs.update(long_name=label, units=units)
    return out


def variant_labels(ds: xr.Dataset) -> list[str]:
    """A readable label per combination of the sweep dimensions, in stacking order; a
    sampled point (``random``, ``lhs``, a named zip) by its values, not its number."""
    dims = sweep_dims(ds)
    if not dims:
        return ["run"]
    per_axis = []
    for d in dims:
        labels = point_axis_labels(ds, d)
        if labels is None:
            labels = [_label(d, v, single=len(dims) == 1) for v in ds[d].values]
        per_axis.append(labels)
    return [", ".join(per_axis[a][i] for a, i in enumerate(pos))
            for pos in np.ndindex(*(len(labels) for labels in per_axis))]


def _label(dim: str, value, single: bool = False) -> str:
    if isinstance(value, (float, np.floating)):
        value = f"{value:g}"
    value = str(value)
    if single and dim == "variant":
        return value
    return f"{dim.split('.')[-2] + '.' if dim.count('.') >= 1 else ''}{dim.split('.')[-1]}={value}"


def by_variant(da: xr.DataArray) -> xr.DataArray:
    """``da`` with its sweep dimensions stacked into one ``variant`` dimension of labels."""
    dims = [d for d in sweep_dims(da.to_dataset(name="_")) if d in da.dims]
    labels = variant_labels(da.to_dataset(name="_"))
    if not dims:
        da = da.expand_dims(variant=labels)
        return da
    if dims == ["variant"]:
        return da.assign_coords(variant=labels)
    stacked = da.stack(_combo=dims).drop_vars([*dims, "_combo"], errors="ignore")
    stacked = stacked.rename(_combo="variant").assign_coords(variant=labels)
    return stacked


def interval(da: xr.DataArray, level: float = 0.95) -> xr.Dataset:
    """Mean over replicates with a t confidence interval (NaN half-width for one replicate).

    With assumption draws (a ``draw`` dimension) the unit is the draw: each draw's mean
    over its replicates, then the mean over the draws with its t interval (the expected
    figure over the assumptions, as the sweep summary's), and ``spread_low`` and
    ``spread_high``, the 5% and 95% quantiles of the draws' means: how far the
    assumptions move it.
    """
    if DRAW in da.dims and da.sizes[DRAW] > 1:
        draws = da.mean(REPLICATE) if REPLICATE in da.dims else da
        out = interval(draws.rename({DRAW: REPLICATE}), level)
        with np.errstate(invalid="ignore"):  # an infinite CAC of a draw without customers
            q = draws.quantile([0.05, 0.95], dim=DRAW)
        return out.assign(spread_low=q.isel(quantile=0, drop=True),
                          spread_high=q.isel(quantile=1, drop=True))
    if DRAW in da.dims:
        da = da.squeeze(DRAW, drop=True)
    if REPLICATE not in da.dims:
        return xr.Dataset({"mean": da, "low": da * np.nan, "high": da * np.nan,
                           "n": xr.full_like(da, 1, dtype=int)})
    n = da.notnull().sum(REPLICATE)
    mean = da.mean(REPLICATE)
    sd = da.std(REPLICATE, ddof=1)
    t = xr.apply_ufunc(lambda k: stdtrit(np.maximum(k - 1, 1), 0.5 + level / 2), n)
    half = xr.where(n > 1, t * sd / np.sqrt(n), np.nan)
    return xr.Dataset({"mean": mean, "low": mean - half, "high": mean + half, "n": n})
