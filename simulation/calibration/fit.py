"""ABC-SMC: a posterior over the free parameters of a stochastic simulator.

Approximate Bayesian computation keeps the parameter values whose simulated figures
land within a tolerance of the observed ones; sequential Monte Carlo lowers the
tolerance generation by generation, proposing each generation's values around the
previous one's (Beaumont et al.'s population Monte Carlo, with Toni et al.'s schedule):

- generation 0 draws ``population`` values from the prior and accepts them all;
- generation t has tolerance ``max(epsilon, quantile of t-1's distances)``; it draws
  a particle of t-1 by weight, moves it by a Gaussian with twice the population's
  weighted covariance (in each prior's internal coordinate, :mod:`.priors`),
  simulates it on fresh seeds and keeps it when its distance is within the tolerance;
  a kept particle's weight is prior / (the mixture it was proposed from);
- the fit ends after the generation whose tolerance is ``epsilon`` (the runs then miss
  the targets by about their stated sds), after ``generations``, when a generation
  accepts fewer than ``min_acceptance`` of its proposals, or when the evaluation
  budget runs out (then the last whole generation is the answer).

The distance is the root mean square over the observed figures of each figure's mean
squared miss in its sds: a weekly series of 52 values weighs as much as one total.

**Determinism.** A generation is evaluated in rounds. Round r of generation t draws its
proposals and its runs' seeds from a generator seeded by (seed, t, r) alone, and the
round's size depends only on what earlier rounds found; the kept particles are the
first ones within the tolerance in proposal order. So a seed gives the same posterior
whatever the number of workers or threads and whichever worker finishes first.

**Resuming.** The state (:class:`FitState`) is checkpointed after every round: a killed
fit resumed redoes at most the round under way, and gives exactly the posterior of an
uninterrupted one (the next round's generator does not depend on the interruption).
Unlike pyABC, nothing of the fit's adaptation is lost at a resume: the tolerance and the
kernel are functions of the checkpointed populations.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from simulation.calibration.priors import Prior

FORMAT = "distsim-calibration/1"


@dataclass
class Generation:
    """A finished generation: its accepted particles (internal coordinates), their
    normalised weights, distances and simulated figures, its tolerance and cost."""

    z: np.ndarray
    weights: np.ndarray
    distances: np.ndarray
    figures: np.ndarray
    epsilon: float
    evaluations: int

    @property
    def ess(self) -> float:
        """Effective sample size, 1 / sum(w^2)."""
        return float(1.0 / np.sum(self.weights ** 2))


@dataclass
class FitState:
    """Everything a fit needs to go on: the finished generations and the round under way."""

    fingerprint: str
    replicates: int
    generations: list[Generation] = field(default_factory=list)
    round: int = 0  # rounds done in the generation under way
    partial_z: np.ndarray | None = None  # its accepted particles so far
    partial_distances: np.ndarray | None = None
    partial_figures: np.ndarray | None = None
    partial_evaluations: int = 0
    evaluations: int = 0  # over the whole fit
    stopped: str = ""  # why the fit ended ("" while it goes on)

    # -- checkpoint ---------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        arrays = {}
        for t, g in enumerate(self.generations):
            for name in ("z", "weights", "distances", "figures"):
                arrays[f"g{t}_{name}"] = getattr(g, name)
        if self.partial_z is not None:
            arrays["partial_z"] = self.partial_z
            arrays["partial_distances"] = self.partial_distances
            arrays["partial_figures"] = self.partial_figures
        meta = {"format": FORMAT, "fingerprint": self.fingerprint,
                "replicates": self.replicates, "round": self.round,
                "partial_evaluations": self.partial_evaluations,
                "evaluations": self.evaluations, "stopped": self.stopped,
                "generations": [{"epsilon": g.epsilon, "evaluations": g.evaluations}
                                for g in self.generations]}
        buf = io.BytesIO()
        np.savez(buf, meta=np.array(json.dumps(meta)), **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> FitState:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            if meta.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} checkpoint")
            gens = [Generation(npz[f"g{t}_z"], npz[f"g{t}_weights"], npz[f"g{t}_distances"],
                               npz[f"g{t}_figures"], g["epsilon"], g["evaluations"])
                    for t, g in enumerate(meta["generations"])]
            partial = ("partial_z" in npz.files)
            return cls(meta["fingerprint"], meta["replicates"], gens, meta["round"],
                       npz["partial_z"] if partial else None,
                       npz["partial_distances"] if partial else None,
                       npz["partial_figures"] if partial else None,
                       meta["partial_evaluations"], meta["evaluations"], meta["stopped"])


@dataclass(frozen=True)
class Problem:
    """What is fitted: the priors, the observed vector, its sds and owning figures."""

    priors: tuple[Prior, ...]
    observed: np.ndarray
    sds: np.ndarray
    owner: np.ndarray  # figure index of each observed value

    def values(self, z: np.ndarray) -> np.ndarray:
        """Scenario values of internal coordinates (rows of particles)."""
        return np.column_stack([p.value(z[:, i]) for i, p in enumerate(self.priors)])

    def log_prior(self, z: np.ndarray) -> np.ndarray:
        return sum(p.log_density(z[:, i]) for i, p in enumerate(self.priors))

    def distance(self, figures: np.ndarray) -> np.ndarray:
        """RMS over figures of each figure's mean squared miss in sds; inf for NaN."""
        miss = ((figures - self.observed) / self.sds) ** 2
        n = int(self.owner.max()) + 1
        per_figure = np.zeros((len(figures), n))
        np.add.at(per_figure.T, self.owner, miss.T)
        per_figure /= np.bincount(self.owner, minlength=n)
        d = np.sqrt(per_figure.mean(axis=1))
        return np.where(np.isfinite(d), d, np.inf)


Evaluate = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(values (rows, parameters), seeds (rows, replicates)) -> figures (rows, observed)."""


def weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> float:
    order = np.argsort(x, kind="stable")
    cum = np.cumsum(w[order])
    return float(x[order][min(len(x) - 1, int(np.searchsorted(cum, q * cum[-1])))])


def kernel_covariance(g: Generation) -> np.ndarray:
    """Twice the weighted covariance of a population (Beaumont et al. 2009), kept
    positive definite when the particles collapse onto one value."""
    mean = g.weights @ g.z
    dev = g.z - mean
    cov = 2.0 * (dev * g.weights[:, None]).T @ dev
    cov = np.atleast_2d(cov)
    jitter = 1e-12 * max(1.0, float(np.max(np.abs(np.diag(cov)))))
    return cov + jitter * np.eye(len(cov))


def _log_mixture(z: np.ndarray, g: Generation, cov: np.ndarray) -> np.ndarray:
    """log sum_j w_j N(z; z_j, cov) for each row of ``z``."""
    chol = np.linalg.cholesky(cov)
    diff = z[:, None, :] - g.z[None, :, :]
    sol = np.linalg.solve(chol, diff.reshape(-1, z.shape[1]).T).T.reshape(diff.shape)
    logk = -0.5 * np.sum(sol ** 2, axis=2) - np.sum(np.log(np.diag(chol)))
    logk += np.log(g.weights)[None, :]
    top = logk.max(axis=1, keepdims=True)
    return (top + np.log(np.exp(logk - top).sum(axis=1, keepdims=True)))[:, 0]


def propose(problem: Problem, prev: Generation | None, rng: np.random.Generator,
            n: int) -> np.ndarray:
    """``n`` proposals in internal coordinates: from the prior (generation 0), else by
    moving particles of ``prev`` (redrawn until inside the prior's support)."""
    if prev is None:
        return np.column_stack([p.sample(rng, n) for p in problem.priors])
    cov = kernel_covariance(prev)
    chol = np.linalg.cholesky(cov)
    out = np.zeros((0, len(problem.priors)))
    for _ in range(1000):
        m = n - len(out)
        idx = rng.choice(len(prev.z), size=2 * m, p=prev.weights)
        z = prev.z[idx] + rng.standard_normal((2 * m, len(problem.priors))) @ chol.T
        z = z[np.isfinite(problem.log_prior(z))]
        out = np.concatenate([out, z[:m]])
        if len(out) == n:
            return out
    raise RuntimeError("the perturbation kernel keeps leaving the prior's support")


def run_fit(problem: Problem, settings, evaluate: Evaluate, state: FitState, *, seed: int,
            budget: int, save: Callable[[FitState], None] | None = None,
            progress: Callable[[int], None] | None = None) -> FitState:
    """Run (or go on with) the fit in ``state`` until it ends (module docstring).

    ``settings``: :class:`simulation.calibration.targets.FitSettings`; ``budget``: the
    evaluations the whole fit may use; ``save(state)`` after every round (the
    checkpoint); ``progress(evaluations)`` as evaluations finish.
    """
    n = settings.population
    r = state.replicates
    if state.stopped == "budget" and state.evaluations < budget:
        state.stopped = ""  # resumed with a larger budget: go on
    while not state.stopped:
        t = len(state.generations)
        prev = state.generations[-1] if t else None
        eps = math.inf if prev is None else max(
            settings.epsilon, weighted_quantile(prev.distances, prev.weights,
                                                settings.quantile))
        if state.partial_z is None:
            k = len(problem.observed)
            state.partial_z = np.zeros((0, len(problem.priors)))
            state.partial_distances = np.zeros(0)
            state.partial_figures = np.zeros((0, k))
        while len(state.partial_z) < n:
            need = n - len(state.partial_z)
            left = budget - state.evaluations
            if left <= 0:
                state.stopped = "budget"
                break
            if (state.partial_evaluations >= n / settings.min_acceptance
                    and len(state.partial_z) < n):
                state.stopped = "acceptance"
                break
            rate = 1.0 if prev is None else max(
                settings.min_acceptance,
                (len(state.partial_z) / state.partial_evaluations if state.partial_evaluations
                 and len(state.partial_z) else prev_rate(state)))
            size = min(left, max(need, math.ceil(need / rate * 1.2)))
            rng = np.random.default_rng([seed, t, state.round])
            z = propose(problem, prev, rng, size)
            seeds = rng.integers(0, 2**63 - 1, size=(size, r), dtype=np.int64)
            done = state.evaluations
            figures = evaluate(problem.values(z), seeds,
                               None if progress is None else (lambda k, done=done: progress(done + k)))
            d = problem.distance(figures)
            keep = np.flatnonzero(np.isfinite(d) & (d <= eps))[:need]
            state.partial_z = np.concatenate([state.partial_z, z[keep]])
            state.partial_distances = np.concatenate([state.partial_distances, d[keep]])
            state.partial_figures = np.concatenate([state.partial_figures, figures[keep]])
            state.partial_evaluations += size
            state.evaluations += size
            state.round += 1
            if save is not None:
                save(state)
        if len(state.partial_z) < n:  # the budget or the acceptance ended it: drop it
            _clear_partial(state)
            if not state.generations:
                state.stopped = "budget"
            break
        z = state.partial_z
        if prev is None:
            w = np.full(n, 1.0 / n)
        else:
            logw = problem.log_prior(z) - _log_mixture(z, prev, kernel_covariance(prev))
            w = np.exp(logw - logw.max())
            w /= w.sum()
        state.generations.append(Generation(z, w, state.partial_distances,
                                            state.partial_figures, eps,
                                            state.partial_evaluations))
        _clear_partial(state)
        if eps <= settings.epsilon:
            state.stopped = "epsilon"
        elif len(state.generations) >= settings.generations:
            state.stopped = "generations"
        elif state.evaluations >= budget:
            state.stopped = "budget"
        if save is not None:
            save(state)
    return state


def prev_rate(state: FitState) -> float:
    """The last generation's acceptance rate (how large a round to start with)."""
    g = state.generations[-1]
    return len(g.z) / max(1, g.evaluations)


def _clear_partial(state: FitState) -> None:
    state.partial_z = state.partial_distances = state.partial_figures = None
    state.partial_evaluations = 0
    state.round = 0


def resample(g: Generation, rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` equally weighted draws of a weighted population (systematic resampling:
    each particle appears floor or ceil of size x weight times)."""
    positions = (rng.random() + np.arange(size)) / size
    idx = np.searchsorted(np.cumsum(g.weights), positions)
    return g.z[np.minimum(idx, len(g.z) - 1)]
