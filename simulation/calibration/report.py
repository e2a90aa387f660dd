"""``distsim report DIR`` for a calibration: one self-contained HTML page of the
posterior (a histogram per parameter against its prior's range), the fit (fit.png's
panels and the table of every observed value) and the fit's history, read from
``DIR/posterior.nc`` alone, in the run report's style (:mod:`simulation.analysis.report`)."""

from __future__ import annotations

import base64

import numpy as np
import xarray as xr

from simulation.analysis.plots import plt, png_bytes
from simulation.analysis.report import CSS, _esc, _table
from simulation.calibration.plots import fit_png
from simulation.calibration.priors import Prior


def parameters(post: xr.Dataset) -> list[str]:
    return [name for name, v in post.data_vars.items() if v.dims == ("sample",)]


def _png(data: bytes, caption: str) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return (f'<figure><img alt="{_esc(caption)}" src="data:image/png;base64,{encoded}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>")


def _posterior_png(post: xr.Dataset) -> bytes:
    from simulation.calibration.targets import targets_from_text

    priors = {p.path: p for p in targets_from_text(post.attrs["targets"]).parameters}
    names = parameters(post)
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.0), squeeze=False)
    try:
        for ax, name in zip(axes[0], names, strict=True):
            prior: Prior = priors[name]
            ax.hist(post[name].values, bins=20, color="#1f77b4", alpha=0.8)
            lo, hi = prior.quantile(0.0), prior.quantile(1.0)
            if not np.isfinite(lo) or not np.isfinite(hi):
                lo, hi = prior.quantile(0.005), prior.quantile(0.995)
            ax.set_xlim(lo, hi)
            ax.axvline(post[name].attrs["estimate"], color="#222", lw=1.5)
            ax.set_title(name, fontsize=9)
            ax.set_xlabel(f"prior {prior.describe()}", fontsize=8)
        fig.tight_layout()
        return png_bytes(fig)
    finally:
        plt.close(fig)


def render_calibration(post: xr.Dataset, source: str = "") -> str:
    """The report as one HTML string."""
    title = f"Calibration report — {post.attrs.get('scenario_name', '')}"
    meta = [f"{k.replace('_', ' ')}: {_esc(post.attrs[k])}"
            for k in ("agents", "days", "seed", "replicates", "total_evaluations", "runs",
                      "stopped", "simulation_version") if k in post.attrs]
    if source:
        meta.append(f"source: {_esc(source)}")
    rows = []
    for name in parameters(post):
        v = post[name]
        lo, hi = v.attrs["interval_90"]
        rows.append([_esc(name), _esc(v.attrs["prior"]), f"{v.attrs['estimate']:.4g}",
                     f"{lo:.4g}", f"{hi:.4g}"])
    fit = []
    for i in range(post.sizes["observation"]):
        r = post.isel(observation=i)
        z = float(r.z)
        fit.append([_esc(r.figure.values), _esc(r.element.values), f"{float(r.observed):.4g}",
                    f"{float(r.sd):.4g}", f"{float(r.simulated):.4g}", f"{z:.2f}",
                    "yes" if abs(z) <= 2 else "NO"])
    history = [[str(t), f"{float(post.epsilon[t]):.3g}", str(int(post.evaluations[t])),
                f"{float(post.acceptance[t]):.0%}", f"{float(post.ess[t]):.0f}"]
               for t in range(post.sizes["generation"])]
    body = [
        "<h2>Posterior</h2><p>Each free parameter's posterior median (the calibrated "
        "scenario's value) and 90% interval, from equally weighted draws.</p>",
        _table(["parameter", "prior", "estimate (median)", "5%", "95%"], rows),
        _png(_posterior_png(post), "posterior draws over each prior's range; the line is "
                                   "the estimate"),
        "<h2>Observed vs simulated</h2><p>The calibrated scenario's mean over "
        f"{_esc(post.attrs.get('check_runs', '?'))} fresh runs; z is the miss in the "
        "observed figure's sds.</p>",
        _png(fit_png(post), "observed (band: 2 sds) vs the calibrated scenario"),
        _table(["figure", "value", "observed", "sd", "simulated", "z", "within 2 sd"], fit),
        "<h2>The fit</h2>",
        _table(["generation", "tolerance (sd)", "evaluations", "accepted", "effective size"],
               history),
        "<h2>Targets</h2><pre>" + _esc(post.attrs.get("targets", "")) + "</pre>",
    ]
    return ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
            f"<title>{_esc(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{_esc(title)}</h1><p class=meta>{' · '.join(meta)}</p>"
            + "\n".join(body) + "</body></html>")
