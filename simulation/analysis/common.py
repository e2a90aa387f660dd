"""What every analysis needs: which dimensions are a run's and which a sweep's, the
scenario stored in a result, the channel colours shared by every plot, weekly sums.

A result of ``distsim run`` has the dimensions of docs/contracts.md (``day``, ``channel``,
``stage``, ...). A sweep's combined dataset has the same variables with one more
dimension per swept parameter or named variant, plus ``replicate``. Analyses are
written with xarray reductions over ``day`` and ``channel`` so that they apply to
both; the sweep dimensions simply come along.
"""

from __future__ import annotations

import tomllib

import numpy as np
import xarray as xr

RUN_DIMS = frozenset({
    "day", "channel", "stage", "segment", "attribution_model", "from_state", "to_state",
    "cohort", "cohort_week", "weeks_since", "week",
})
REPLICATE = "replicate"
DRAW = "draw"
WORD_OF_MOUTH = "word_of_mouth"

# Channel colours: tab10 in channel order, word of mouth always the same grey-green, so
# a channel keeps its colour in every plot of a result (and of any result with the
# same channel list).
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#bcbd22", "#17becf", "#7f7f7f", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896",
            "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5")
WOM_COLOUR = "#5d6d5e"


def channels(ds: xr.Dataset) -> list[str]:
    return [str(c) for c in ds.channel.values]


def channel_colours(names) -> dict[str, str]:
    """One colour per channel name, fixed by the channel's position (word of mouth: fixed)."""
    out = {}
    k = 0
    for name in names:
        name = str(name)
        if name == WORD_OF_MOUTH:
            out[name] = WOM_COLOUR
        else:
            out[name] = _PALETTE[k % len(_PALETTE)]
            k += 1
    return out


def _run_level_dims(ds: xr.Dataset) -> list[str]:
    """Every dimension a sweep adds to a run (swept parameters, variants, replicate).

    ``stage_count(day, stage)`` is in every result, so whatever else it is indexed by
    came from the sweep; a new run dimension added to the dataset one day is not
    mistaken for one.
    """
    if "stage_count" in ds:
        return [d for d in ds.stage_count.dims if d not in ("day", "stage")]
    return [d for d in ds.dims if d not in RUN_DIMS]


def sweep_dims(ds: xr.Dataset) -> list[str]:
    """Dimensions of swept parameters or named variants, the decisions (not ``replicate``
    nor ``draw``, the assumption draws), in order."""
    return [d for d in _run_level_dims(ds) if d not in (REPLICATE, DRAW)]


def axis_parameters(ds: xr.Dataset, dim: str) -> list[str]:
    """The swept parameters along a sweep axis: the coordinates that hold the values set.

    A grid axis is its parameter (the index holds the values); a zip axis named after its
    first parameter holds that one in its index and the others along it; a named zip
    block and a ``random`` or ``lhs`` block number their points (the index is 0, 1, ...,
    marked ``point number`` by the combined dataset) and hold every parameter along the
    axis. A named variant axis has none.
    """
    if dim == "variant" or dim not in ds.coords:
        return []
    along = [str(c) for c in ds.coords if c != dim and ds[c].dims == (dim,)]
    return along if is_point_numbered(ds, dim) else [dim, *along]


def is_point_numbered(ds: xr.Dataset, dim: str) -> bool:
    """Whether an axis's index numbers its points rather than holding a parameter's values.

    Combined datasets mark such an index (``kind = "point number"``); for files made
    before the mark, an index of exactly 0, 1, ... with parameters along it is one.
    """
    index = ds[dim]
    if index.attrs.get("kind") == "point number":
        return True
    along = [c for c in ds.coords if c != dim and ds[c].dims == (dim,)]
    values = index.values
    return bool(along) and np.issubdtype(values.dtype, np.integer) and np.array_equal(
        values, np.arange(values.size))


def short_names(paths: list[str]) -> dict[str, str]:
    """Each dotted path by its shortest unique tail (``channels.search.daily_budget`` ->
    ``daily_budget``, or ``search.daily_budget`` where two channels' budgets are swept)."""
    out = {}
    for path in paths:
        parts = path.split(".")
        for k in range(1, len(parts) + 1):
            tail = ".".join(parts[-k:])
            if sum(p == tail or p.endswith("." + tail) for p in paths) == 1:
                break
        out[path] = tail
    return out


def sig3(value) -> str:
    """A swept value for a label: whole numbers exactly, others at 3 significant figures
    without an exponent where one is not needed (87.3, 412, 0.0153)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    v = float(value)
    if not np.isfinite(v) or v == 0:
        return f"{v:g}"
    digits = 2 - int(np.floor(np.log10(abs(v))))
    v = round(v, digits)
    if 1e-4 <= abs(v) < 1e15:
        text = f"{v:.{max(digits, 0)}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return f"{v:.3g}"


def point_axis_labels(ds: xr.Dataset, dim: str) -> list[str] | None:
    """Labels by value for the points of a numbered axis (``random``, ``lhs``, named zip):
    ``price=87.3, daily_budget=412``; None for any other axis.

    A sample number says nothing to a reader, its values do; the index coordinate keeps
    the numbers (files stay as they were), only the labels change. Two points that round
    to the same label get their number added (``#k``) so that labels stay unique.
    """
    if dim not in ds.coords or not is_point_numbered(ds, dim):
        return None
    params = axis_parameters(ds, dim)
    names = short_names(params)
    labels = [", ".join(f"{names[p]}={sig3(ds[p].values[i])}" for p in params)
              for i in range(ds.sizes[dim])]
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    numbers = ds[dim].values
    return [f"{label} #{numbers[i]}" if counts[label] > 1 else label
            for i, label in enumerate(labels)]


def is_sweep(ds: xr.Dataset) -> bool:
    return bool(_run_level_dims(ds))


def pooled(ds: xr.Dataset) -> xr.Dataset:
    """A sweep collapsed to one run-shaped dataset: the mean over every sweep dimension.

    Analyses compute ratios from flows (spend, conversions, margin), and a ratio of
    means is the ratio of pooled sums, so this is the pooled estimate.
    """
    extra = _run_level_dims(ds)
    return ds.mean(extra, keep_attrs=True) if extra else ds


def scenario_of(ds: xr.Dataset) -> dict:
    """The resolved scenario stored with a result, as a plain dict ({} when absent)."""
    text = ds.attrs.get("scenario")
    if not isinstance(text, str) or not text:
        return {}
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}


def channel_config(ds: xr.Dataset) -> dict[str, dict]:
    """Each configured channel's table from the stored scenario, by name."""
    return {c.get("name"): c for c in scenario_of(ds).get("channels", [])}


def per_channel(ds: xr.Dataset, key: str, default: float = 0.0) -> xr.DataArray:
    """A numeric channel field of the stored scenario as a DataArray over ``channel``."""
    cfg = channel_config(ds)
    values = []
    for name in channels(ds):
        v = cfg.get(name, {}).get(key, default)
        values.append(float(v) if isinstance(v, (int, float)) and v is not None else default)
    return xr.DataArray(np.array(values), coords={"channel": ds.channel}, dims="channel")


def size_text(attrs: dict, days: int) -> str:
    """'N customers x D days', or, where the sample is not the market, 'a market of M
    people, N simulated x D days': every figure is the market's, and a title that named
    only the sample would understate them."""
    agents = int(attrs["agents"])
    market = int(attrs.get("market_size", agents))
    if market == agents:
        return f"{agents:,} customers x {days} days"
    return f"a market of {market:,} people, {agents:,} simulated x {days} days"


def title_of(ds: xr.Dataset) -> str:
    """'<scenario> (N customers x D days)' for plot and report titles."""
    name = ds.attrs.get("scenario_name") or scenario_of(ds).get("name") or "run"
    if ds.attrs.get("agents") is None:
        return str(name)
    return f"{name} ({size_text(ds.attrs, ds.sizes.get('day'))})"


def weekly(da: xr.DataArray, how: str = "sum") -> xr.DataArray:
    """Days grouped into weeks since the start (week 0 = days 0-6); a trailing partial
    week is dropped when there is at least one full week."""
    days = da.sizes["day"]
    full = days // 7 if days >= 7 else 1
    da = da.isel(day=slice(0, full * 7 if days >= 7 else days))
    week = xr.DataArray(da.day.values // 7, coords={"day": da.day}, dims="day", name="week")
    grouped = da.groupby(week)
    return grouped.sum() if how == "sum" else grouped.mean()


def safe_div(a, b):
    """a / b with NaN where b is 0 (xarray or numpy)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return xr.where(b != 0, a / b, np.nan) if isinstance(a, xr.DataArray) or isinstance(
            b, xr.DataArray) else np.where(b != 0, a / np.where(b != 0, b, 1), np.nan)
