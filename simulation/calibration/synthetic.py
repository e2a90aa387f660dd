"""Targets made by the model itself, at known parameter values: the identifiability check.

Before fitting a business's figures, fit figures the model produced at values you
chose: if the posterior does not find those values, narrowly, the figures cannot tell
the parameters apart, whatever the real data say. :func:`synthetic_targets` simulates
the scenario at ``truth`` on a few seeds and writes a TARGETS.toml whose observed values
are the runs' mean and whose sds are the run-to-run noise plus a relative measurement
error (a floor keeps an empty histogram bin from having no uncertainty).
``tests/test_calibration.py`` and ``benchmarks/calibration_identifiability.py`` use it.
"""

from __future__ import annotations

import numpy as np
import tomli_w

from simulation.calibration.evaluate import Evaluator
from simulation.calibration.targets import Observed, Targets
from simulation.scenario import Scenario


def synthetic_targets(scenario: Scenario, truth: dict[str, float], observed: list[dict],
                      parameters: list[dict], fit: dict | None = None, *, runs: int = 4,
                      seed: int = 12345, relative_sd: float = 0.05, jobs: int = 1) -> str:
    """TARGETS.toml text: ``observed`` (Observed fields without ``value`` and ``sd``; an
    ``orders_per_customer`` figure says how many values it has with ``bins``),
    valued by ``runs`` runs of ``scenario`` at ``truth``, with ``parameters`` and ``fit``
    as given. The sd of each value is sqrt(noise^2 + (relative_sd x value)^2), at least
    the scenario's scale (one simulated customer)."""
    observed = [dict(o) for o in observed]
    lengths = [_length(o, scenario) for o in observed]
    for o in observed:
        o.pop("bins", None)
    specs = [Observed(**o, value=[0.0] * k if k > 1 or o.get("weekly") else 0.0, sd=1.0)
             for o, k in zip(observed, lengths, strict=True)]
    probe = Targets(parameters=parameters, observed=specs)
    paths = tuple(truth)
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, 2**63 - 1, size=(runs, 1), dtype=np.int64)
    values = np.array([[truth[p] for p in paths]] * runs)
    with Evaluator(scenario, paths, probe, jobs=jobs) as evaluator:
        figures = evaluator(values, seeds)
    mean = figures.mean(axis=0)
    noise = figures.std(axis=0, ddof=1)
    scale = scenario.market.size / scenario.simulation.agents
    sd = np.maximum(np.sqrt(noise ** 2 + (relative_sd * mean) ** 2), scale)
    out, at = [], 0
    for o, spec in zip(observed, specs, strict=True):
        k = len(spec.values)
        v, s = mean[at:at + k], sd[at:at + k]
        at += k
        entry = dict(o)
        single = isinstance(spec.value, float)
        entry["value"] = float(_round(v[0])) if single else [float(_round(x)) for x in v]
        entry["sd"] = float(_round(s[0])) if single else [float(_round(x)) for x in s]
        out.append(entry)
    data = {"fit": fit or {}, "parameters": parameters, "observed": out}
    return tomli_w.dumps(data)


def _length(o: dict, scenario: Scenario) -> int:
    if o["variable"] == "orders_per_customer":
        return int(o.get("bins", 0)) or 5
    if o.get("weekly"):
        first, last = o.get("days", (0, scenario.simulation.days - 1))
        return (last - first + 1) // 7
    return 1


def _round(x: float) -> float:
    return float(f"{x:.6g}")
