"""Free parameters and their priors.

The fit moves every parameter in an *internal* coordinate where its prior is simple and
a Gaussian perturbation is sensible: the value itself for ``uniform`` and ``normal``,
its logarithm for ``log_uniform`` (a rate known only to an order of magnitude is
explored evenly across magnitudes, and never proposed at or below zero).

Each prior is one scipy distribution of the internal coordinate (:meth:`Prior.scipy`):
uniform on [low, high], uniform on [log low, log high], or a normal truncated to [low,
high]. The fit hands the same (name, arguments) to pyabc's ``RV`` (:mod:`.fit`), which
draws from it and weighs by its density; the quantiles here are that distribution's, so
a prior is defined once. Densities are those of the internal coordinate; ABC-SMC's
importance weights only ever divide one by another, so the Jacobian of the log never
matters beyond this choice.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy import stats

PRIORS = ("uniform", "log_uniform", "normal")


class Prior(BaseModel):
    """One free parameter: a dotted scenario path (as ``--set`` takes) and its prior."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    path: str = Field(min_length=1, description="the scenario field, as --set names it "
                                                "(channels.search.effects.decision)")
    prior: Literal["uniform", "log_uniform", "normal"] = Field(
        "uniform", description="uniform on [low, high]; log_uniform: log-uniform on "
                               "[low, high] (low > 0); normal: mean and sd, truncated to "
                               "[low, high] where given")
    low: float | None = Field(None, description="lower end of the range (normal: "
                                                "truncation, optional)")
    high: float | None = Field(None, description="upper end of the range (normal: "
                                                 "truncation, optional)")
    mean: float | None = Field(None, description="normal: mean")
    sd: float | None = Field(None, gt=0.0, description="normal: standard deviation")

    @model_validator(mode="after")
    def _complete(self) -> Prior:
        if self.prior in ("uniform", "log_uniform"):
            if self.low is None or self.high is None:
                raise ValueError(f"a {self.prior} prior needs low and high")
            if self.mean is not None or self.sd is not None:
                raise ValueError(f"a {self.prior} prior takes low and high, not mean or sd")
            if self.prior == "log_uniform" and self.low <= 0:
                raise ValueError("a log_uniform prior needs low > 0")
        else:
            if self.mean is None or self.sd is None:
                raise ValueError("a normal prior needs mean and sd")
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise ValueError("needs low < high")
        if self.prior == "normal":
            lo, hi = self._standard_bounds()
            if stats.norm.cdf(hi) - stats.norm.cdf(lo) < 1e-6:
                raise ValueError("the normal prior has almost no mass between low and high")
        return self

    # -- the internal coordinate -------------------------------------------------------

    def _standard_bounds(self) -> tuple[float, float]:
        lo = -math.inf if self.low is None else (self.low - self.mean) / self.sd
        hi = math.inf if self.high is None else (self.high - self.mean) / self.sd
        return lo, hi

    @property
    def bounds(self) -> tuple[float, float]:
        """The support in the internal coordinate."""
        if self.prior == "log_uniform":
            return math.log(self.low), math.log(self.high)
        lo = -math.inf if self.low is None else self.low
        hi = math.inf if self.high is None else self.high
        return lo, hi

    def scipy(self) -> tuple[str, tuple[float, ...], dict[str, float]]:
        """The prior of the internal coordinate as a scipy.stats distribution: (name,
        arguments, keyword arguments), as pyabc's ``RV(name, *args, **kwargs)`` takes it."""
        if self.prior == "normal":
            lo, hi = self._standard_bounds()
            return "truncnorm", (lo, hi), {"loc": self.mean, "scale": self.sd}
        lo, hi = self.bounds
        return "uniform", (lo, hi - lo), {}

    def distribution(self):
        """The frozen scipy distribution of the internal coordinate."""
        name, args, kwargs = self.scipy()
        return getattr(stats, name)(*args, **kwargs)

    def value(self, z: np.ndarray) -> np.ndarray:
        """Scenario values of internal coordinates."""
        return np.exp(z) if self.prior == "log_uniform" else np.asarray(z, dtype=float)

    def internal(self, x: np.ndarray) -> np.ndarray:
        return np.log(x) if self.prior == "log_uniform" else np.asarray(x, dtype=float)

    def width(self) -> float:
        """The prior's central 90% interval in scenario values (for the identifiability
        check: a posterior interval at most half of it has learnt something)."""
        lo, hi = self.quantile(0.05), self.quantile(0.95)
        return hi - lo

    def quantile(self, q: float) -> float:
        """The value below which the prior puts a share ``q``."""
        return float(self.value(self.distribution().ppf(q)))

    def median(self) -> float:
        return self.quantile(0.5)

    def describe(self) -> str:
        if self.prior == "normal":
            cut = "" if self.low is None and self.high is None else (
                f" on [{self.low if self.low is not None else '-inf'}, "
                f"{self.high if self.high is not None else 'inf'}]")
            return f"normal({self.mean:g}, sd {self.sd:g}){cut}"
        return f"{self.prior}({self.low:g}, {self.high:g})"
