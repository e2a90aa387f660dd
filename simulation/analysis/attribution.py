"""Attribution tables from a result: who gets the credit for conversions and revenue.

The five rule-based models are credited by the kernel at each conversion from the
customer's first touch and last four touches; Markov removal effects come from the
journey transition counts (:mod:`simulation.analysis.markov`). This module reads them
into tables and gives the revenue twin.
"""

from __future__ import annotations

import xarray as xr

from simulation.analysis.common import safe_div
from simulation.analysis.economics import first_order_revenue

MODEL_LABELS = {
    "first_touch": "first touch",
    "last_touch": "last touch",
    "linear": "linear",
    "time_decay": "time decay",
    "position_based": "position-based (40/20/40)",
    "markov": "Markov removal effect",
}


def attributed_revenue(ds: xr.Dataset) -> xr.DataArray:
    """Revenue of the conversions (first orders) credited under each model.

    Read from the result's ``attributed_revenue`` when the kernel recorded it; otherwise
    estimated as credited conversions x the average first-order revenue (``attrs``
    say so).
    """
    if "attributed_revenue" in ds:
        out = ds.attributed_revenue
        out.attrs.setdefault("method", "measured")
        return out
    rev1, _ = first_order_revenue(ds)
    conv = ds.conversions.sum("day")
    mean_rev1 = safe_div((rev1 * conv).sum("channel"), conv.sum("channel")).fillna(0.0)
    out = ds.attributed_conversions * mean_rev1
    out.name = "attributed_revenue"
    out.attrs.update(units="currency", method="estimated: credited conversions x the mean "
                     "first-order revenue (no attributed_revenue counter in the result)")
    return out
