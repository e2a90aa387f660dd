"""ABC-SMC by pyabc: a posterior over the free parameters of a stochastic simulator.

Approximate Bayesian computation keeps the parameter values whose simulated figures
land within a tolerance of the observed ones; sequential Monte Carlo lowers the
tolerance generation by generation, proposing each generation's values around the
previous one's. pyabc's ``ABCSMC`` does the search: generation 0 draws ``population``
values from the prior (each prior's internal coordinate, :mod:`.priors`); generation t
moves particles of t-1 by its multivariate normal kernel (at twice their weighted
covariance: :func:`kernel`), simulates them and keeps those within the tolerance,
weighted by prior over proposal density. What this module adds are the pieces pyabc
takes as arguments, and the loop around it:

- **the distance** (:class:`Distance`): the root mean square over the observed figures of
  each figure's mean squared miss in its sds, so a weekly series of 52 values weighs as
  much as one total; fixed (not adaptive), so a resume has nothing of it to restore;
- **the tolerance** (:class:`Tolerance`): the ``quantile`` of the last generation's
  weighted distances, floored by ``epsilon``, infinite for generation 0 (which accepts
  every valid prior draw: :class:`Acceptor` rejects the runs whose scenario was invalid);
  recomputed from the database at the start of every generation;
- **the sampler** (:class:`Sampler`): proposal i of generation t draws from numpy's
  global generator seeded by (seed, t, i) alone, and the kept particles are the first
  ``population`` ones within the tolerance in proposal order. Proposals go out in rounds
  whose sizes depend only on what earlier rounds found, cut into tasks of about a second
  of work (:data:`TASK_SECONDS`) on this process, the worker pool or a Dask cluster
  (:meth:`.evaluate.Evaluator.map`). So a seed gives the same posterior on any number of
  workers or threads, whichever worker finishes first, and however the proposals are
  cut into tasks. The model (:class:`Model`) draws each evaluation's simulation seeds
  from the same seeded generator after its proposal: fresh for every evaluation, shared
  with no other particle;
- **the loop** (:func:`run_fit`): one ``ABCSMC.run(max_nr_populations=1)`` per
  generation, each on a fresh ``ABCSMC`` that ``load`` s the database, exactly as a
  ``--resume`` does. The fit ends after the generation whose tolerance is ``epsilon``,
  after ``generations``, when a generation would need more than ``population /
  min_acceptance`` evaluations, or when the ``--evaluations`` budget runs out (every
  round is capped at what is left of it, where pyabc's own budget is checked only
  between generations; the last whole generation is then the answer).

**Resuming.** The checkpoint is pyabc's History database (SQLite), which pyabc writes in
one transaction at the end of each generation, plus a table ``distsim_fit`` of ours (the
fingerprint of what is fitted, the runs per evaluation, why the fit stopped and the
evaluations of a generation that did not finish). Because every generation starts from
the database and draws from generators seeded by its index, a killed fit resumed
redoes the generation in progress and gives exactly the posterior of an uninterrupted
one.
"""

from __future__ import annotations

import logging
import math
import os
import random
import sqlite3
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cloudpickle
import numpy as np

from simulation.calibration.priors import Prior

TASK_SECONDS = 1.0
"""Work per task when evaluations are quick: enough that sending a task and its particles
costs little (slower evaluations go one by one, at least four tasks a worker a round so
that the workers finish a round together)."""

TABLE = "distsim_fit"
"""Our table in pyabc's database: the fit's identity and how it stopped."""


def _import_pyabc():
    """pyabc, without its side effects on this process: at import it sets
    OMP_NUM_THREADS when unset (the thread caps are the command's, and later runs in this
    process would inherit it) and logs every generation to stderr (the command prints
    its own line per generation; pyabc's errors still reach us as exceptions)."""
    before = os.environ.get("OMP_NUM_THREADS")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pyabc
    if before is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    logging.getLogger("ABC").setLevel(logging.CRITICAL)
    return pyabc


pyabc = _import_pyabc()


@dataclass(frozen=True)
class Problem:
    """What is fitted: the priors, the observed vector, its sds and owning figures."""

    priors: tuple[Prior, ...]
    observed: np.ndarray
    sds: np.ndarray
    owner: np.ndarray  # figure index of each observed value

    @property
    def names(self) -> list[str]:
        """The parameters' names in pyabc (and its database): the scenario path, or
        log(path) for a log_uniform prior, whose internal coordinate is the log."""
        return [f"log({p.path})" if p.prior == "log_uniform" else p.path for p in self.priors]

    def values(self, z: np.ndarray) -> np.ndarray:
        """Scenario values of internal coordinates (rows of particles)."""
        return np.column_stack([p.value(z[:, i]) for i, p in enumerate(self.priors)])

    def prior(self):
        """The joint prior as pyabc's ``Distribution`` (:meth:`.priors.Prior.scipy`)."""
        rvs = {}
        for name, p in zip(self.names, self.priors, strict=True):
            kind, args, kwargs = p.scipy()
            rvs[name] = pyabc.RV(kind, *args, **kwargs)
        return pyabc.Distribution(**rvs)

    def distance(self, figures: np.ndarray) -> np.ndarray:
        """RMS over figures of each figure's mean squared miss in sds; inf for NaN."""
        miss = ((figures - self.observed) / self.sds) ** 2
        n = int(self.owner.max()) + 1
        per_figure = np.zeros((len(figures), n))
        np.add.at(per_figure.T, self.owner, miss.T)
        per_figure /= np.bincount(self.owner, minlength=n)
        d = np.sqrt(per_figure.mean(axis=1))
        return np.where(np.isfinite(d), d, np.inf)


Simulate = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(values (parameters,), seeds (replicates,)) -> figures (observed,): one evaluation,
picklable (:class:`simulation.calibration.evaluate.Simulator`)."""


# -- the pieces pyabc takes --------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    """pyabc's model: a particle's parameters (internal coordinates, by name) to its
    figures, simulated on seeds drawn from numpy's global generator, which the sampler
    has seeded for this proposal."""

    problem: Problem
    simulate: Simulate
    replicates: int

    def __call__(self, parameters) -> dict[str, np.ndarray]:
        z = np.array([[parameters[name] for name in self.problem.names]], dtype=float)
        seeds = np.random.randint(0, 2**63 - 1, size=self.replicates, dtype=np.int64)
        figures = self.simulate(self.problem.values(z)[0], seeds)
        return {"figures": np.asarray(figures, dtype=float)}


class Distance(pyabc.Distance):
    """:meth:`Problem.distance` of a particle's figures (the observed ones are the
    problem's, which pyabc also stores as the observed summary statistics)."""

    def __init__(self, problem: Problem):
        super().__init__()
        self.problem = problem

    def __call__(self, x, x_0=None, t=None, par=None) -> float:
        return float(self.problem.distance(np.asarray(x["figures"])[None, :])[0])

    def get_config(self) -> dict:
        return {"name": "RMS over the figures of each figure's mean squared miss in sds"}


class Tolerance(pyabc.QuantileEpsilon):
    """The ``quantile`` of the last generation's weighted distances, at least ``floor``;
    infinite for generation 0. pyabc's own ``QuantileEpsilon`` starts a loaded run at its
    initial value; this one computes the tolerance from the database's last generation
    whenever a run starts, so every generation's tolerance is the same whether the fit
    ran through or was resumed."""

    def __init__(self, quantile: float, floor: float):
        super().__init__(initial_epsilon=math.inf, alpha=quantile, weighted=True)
        self.floor = floor

    def initialize(self, t, get_weighted_distances, get_all_records, max_nr_populations,
                   acceptor_config):
        if t == 0:
            self._look_up = {0: math.inf}
        else:
            self._update(t, get_weighted_distances())

    def _update(self, t, weighted_distances):
        super()._update(t, weighted_distances)
        self._look_up[t] = max(self.floor, float(self._look_up[t]))

    def get_config(self) -> dict:
        return {**super().get_config(), "floor": self.floor}


class Acceptor(pyabc.UniformAcceptor):
    """pyabc's acceptor (distance within the tolerance), which also rejects an infinite
    distance: a run whose scenario was invalid, even at generation 0's infinite
    tolerance."""

    def __call__(self, distance_function, eps, x, x_0, t, par):
        result = super().__call__(distance_function, eps, x, x_0, t, par)
        result.accept = bool(result.accept and math.isfinite(result.distance))
        return result


@dataclass(frozen=True)
class ProposalTask:
    """Proposals ``start`` to ``stop - 1`` of generation ``t``: what a worker receives
    (pyabc's sampling function, pickled once per round)."""

    simulate_one: bytes
    seed: int
    t: int
    start: int
    stop: int


def run_task(task: ProposalTask) -> tuple[list, float]:
    """A task's particles, in proposal order, and the seconds they took. Proposal i
    draws from numpy's (and Python's) global generator seeded by (seed, t, i); the
    generators' states are put back afterwards."""
    simulate_one = cloudpickle.loads(task.simulate_one)
    np_state, py_state = np.random.get_state(), random.getstate()
    start = time.perf_counter()
    particles = []
    try:
        for i in range(task.start, task.stop):
            words = np.random.SeedSequence([task.seed, task.t, i]).generate_state(8)
            np.random.seed(words)
            random.seed(int.from_bytes(words.tobytes(), "little"))
            particles.append(simulate_one())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return particles, time.perf_counter() - start


class InProcess:
    """A mapper that runs tasks here, one after another (the toy fits of the tests)."""

    workers = 1

    def map(self, fn, items, done=None):
        out = []
        for item in items:
            out.append(fn(item))
            if done is not None:
                done(out[-1])
        return out


class Sampler(pyabc.Sampler):
    """Fills a generation in rounds of seeded proposals (module docstring).

    ``mapper.map(fn, items, done)`` runs ``fn`` on each item and returns the results in
    item order (:meth:`simulation.calibration.evaluate.Evaluator.map`); ``progress(n)``
    is told the fit's evaluations so far as tasks finish. Before each generation the
    loop sets ``budget`` (the evaluations it may use), ``max_eval`` (``population /
    min_acceptance``), ``rate`` (the acceptance expected: the last generation's), and
    ``done`` (evaluations before it); afterwards ``stopped`` says why a generation did
    not fill ("budget" or "acceptance"; "" when it did).
    """

    def __init__(self, seed: int, mapper, min_rate: float, progress=None):
        super().__init__()
        self.seed = seed
        self.mapper = mapper
        self.min_rate = min_rate
        self.progress = progress
        self.budget: float = math.inf
        self.max_eval: float = math.inf
        self.rate = 1.0
        self.done = 0
        self.stopped = ""
        self.seconds: float | None = None  # per evaluation, as measured

    def sample_until_n_accepted(self, n, simulate_one, t, *, max_eval=np.inf,
                                all_accepted=False, ana_vars=None):
        payload = cloudpickle.dumps(simulate_one)
        sample = self._create_empty_sample()
        accepted = evaluated = 0
        self.stopped = ""
        while accepted < n:
            if evaluated >= self.budget:
                self.stopped = "budget"
                break
            if evaluated >= self.max_eval:
                self.stopped = "acceptance"
                break
            need = n - accepted
            rate = max(self.min_rate, accepted / evaluated if accepted else self.rate)
            size = int(min(self.budget - evaluated, max(need, math.ceil(need / rate * 1.2))))
            for particle in self._evaluate(payload, t, evaluated, size):
                if particle.accepted and accepted < n:
                    sample.append(particle)
                    accepted += 1
            evaluated += size
        self.nr_evaluations_ = evaluated
        sample.ok = accepted == n
        return sample

    def _evaluate(self, payload: bytes, t: int, start: int, size: int) -> list:
        """Proposals ``start`` to ``start + size - 1`` of generation ``t``, in order."""
        workers = max(1, int(self.mapper.workers))
        most = max(1, math.ceil(size / (4 * workers)))  # four tasks a worker: balance
        per_task = most if self.seconds is None else min(
            most, max(1, math.ceil(TASK_SECONDS / max(self.seconds, 1e-9))))
        per_task = math.ceil(size / math.ceil(size / per_task))  # tasks of equal size
        tasks = [ProposalTask(payload, self.seed, t, lo, min(lo + per_task, start + size))
                 for lo in range(start, start + size, per_task)]
        finished = [self.done + start]

        def done(result) -> None:
            finished[0] += len(result[0])
            if self.progress is not None:
                self.progress(finished[0])

        results = self.mapper.map(run_task, tasks, done)
        seconds = sum(s for _, s in results)
        self.seconds = seconds / size
        return [p for particles, _ in results for p in particles]


# -- the fit's state: pyabc's database and our table --------------------------------------


@dataclass
class Generation:
    """A finished generation, as the database holds it."""

    epsilon: float
    evaluations: int
    accepted: int
    ess: float


@dataclass
class FitState:
    """What the database says of a fit."""

    fingerprint: str
    replicates: int
    generations: list[Generation] = field(default_factory=list)
    evaluations: int = 0  # over the whole fit, unfinished generations included
    stopped: str = ""  # why the fit ended ("" while it goes on)


def url(db: Path) -> str:
    return "sqlite:///" + str(Path(db).resolve())


def _unit_bandwidth(n: float, dimension: int) -> float:
    return 1.0


def kernel():
    """pyabc's multivariate normal kernel at twice the population's weighted covariance
    (Beaumont et al. 2009), not its default Silverman bandwidth, which is narrower: on
    the Gaussian toy of the tests its posterior sds came out 15-20% too narrow at a
    tolerance of 0.3 sd (the kernel explores too little for the weights to correct)."""
    return pyabc.MultivariateNormalTransition(scaling=2.0, bandwidth_selector=_unit_bandwidth)


def _abc(problem: Problem, settings, model, sampler=None):
    return pyabc.ABCSMC(model, problem.prior(), Distance(problem),
                        population_size=settings.population, transitions=kernel(),
                        eps=Tolerance(settings.quantile, settings.epsilon),
                        sampler=sampler if sampler is not None else pyabc.SingleCoreSampler(),
                        acceptor=Acceptor())


def create(db: Path, problem: Problem, settings, fingerprint: str, replicates: int) -> None:
    """A new database for a fit: pyabc's tables (the observed figures, the settings)
    and ours, built beside ``db`` and moved into place whole."""
    db = Path(db)
    part = db.with_name(db.name + ".part")
    part.unlink(missing_ok=True)
    try:
        with _quiet():
            _abc(problem, settings, Model(problem, None, replicates)).new(
                url(part), {"figures": np.asarray(problem.observed, dtype=float)},
                meta_info={"fingerprint": fingerprint, "replicates": replicates})
        with sqlite3.connect(part) as con:
            con.execute(f"CREATE TABLE {TABLE} (fingerprint TEXT, replicates INTEGER, "
                        "stopped TEXT, unfinished INTEGER)")
            con.execute(f"INSERT INTO {TABLE} VALUES (?, ?, '', 0)", (fingerprint, replicates))
        con.close()
        os.replace(part, db)
    finally:
        part.unlink(missing_ok=True)


def _update(db: Path, **values) -> None:
    con = sqlite3.connect(db)
    try:
        with con:
            con.execute(f"UPDATE {TABLE} SET " + ", ".join(f"{k} = ?" for k in values),
                        tuple(values.values()))
    finally:
        con.close()


def read_state(db: Path, known: list[Generation] | None = None) -> FitState:
    """The fit in ``db``; ValueError when it is not a fit's database. ``known``: the
    generations read before (the loop's), which are not read again."""
    if not Path(db).is_file():
        raise ValueError("no such file")
    known = list(known or [])
    try:
        con = sqlite3.connect(f"file:{Path(db).resolve()}?mode=ro", uri=True)
        try:
            row = con.execute(f"SELECT fingerprint, replicates, stopped, unfinished "
                              f"FROM {TABLE}").fetchone()
        finally:
            con.close()
        if row is None:
            raise ValueError(f"no {TABLE} row")
        fingerprint, replicates, stopped, unfinished = row
        with _quiet():
            history = pyabc.History(url(db), create=False)
            history.id = 1
            pops = history.get_all_populations()
            gens = []
            for _, p in pops[pops.t >= 0].sort_values("t").iterrows():
                t = int(p.t)
                if t < len(known):
                    gens.append(known[t])
                    continue
                _, w = history.get_distribution(m=0, t=t)
                gens.append(Generation(float(p.epsilon), int(p.samples), len(w),
                                       float(1.0 / np.sum(w ** 2))))
    except ValueError:
        raise
    except Exception as exc:  # sqlite3, SQLAlchemy, pandas: not our database
        raise ValueError(f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    total = sum(g.evaluations for g in gens) + int(unfinished)
    return FitState(fingerprint, int(replicates), gens, total, stopped)


def last_population(db: Path, problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    """The last generation's particles (internal coordinates, in problem order) and
    their normalised weights."""
    with _quiet():
        history = pyabc.History(url(db), create=False)
        history.id = 1
        frame, w = history.get_distribution(m=0, t=history.max_t)
    return frame[problem.names].to_numpy(dtype=float), np.asarray(w, dtype=float)


def resample(z: np.ndarray, w: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` equally weighted draws of a weighted population (systematic resampling:
    each particle appears floor or ceil of size x weight times, as often as its weight
    says on average; pyabc's deterministic resampling rounds small weights to none)."""
    positions = (rng.random() + np.arange(size)) / size
    idx = np.searchsorted(np.cumsum(w), positions)
    return z[np.minimum(idx, len(z) - 1)]


class _quiet:
    """pyabc and what it uses (pandas, SQLAlchemy, numpy) warn about things a user of
    the command cannot act on (inf - inf when it compares generation 0's tolerance with
    the one before it, for one); no warning reaches the console from inside the fit."""

    def __enter__(self):
        self.warnings = warnings.catch_warnings()
        self.warnings.__enter__()
        warnings.simplefilter("ignore")
        self.errstate = np.errstate(all="ignore")
        self.errstate.__enter__()

    def __exit__(self, *exc):
        self.errstate.__exit__(*exc)
        self.warnings.__exit__(*exc)


# -- the fit -----------------------------------------------------------------------------


def stop_reason(state: FitState, settings, budget: int) -> str:
    """Why a fit in ``state`` is over, "" when it goes on."""
    if state.stopped:
        return state.stopped
    if state.generations and state.generations[-1].epsilon <= settings.epsilon:
        return "epsilon"
    if len(state.generations) >= settings.generations:
        return "generations"
    if state.evaluations >= budget:
        return "budget"
    return ""


def run_fit(problem: Problem, settings, simulate: Simulate, db: Path, *, seed: int,
            budget: int, mapper=None, progress: Callable[[int], None] | None = None,
            generation: Callable[[FitState], None] | None = None) -> FitState:
    """Run (or go on with) the fit in ``db`` (:func:`create`) until it ends.

    ``settings``: :class:`simulation.calibration.targets.FitSettings`; ``simulate``:
    one evaluation (:data:`Simulate`); ``budget``: the evaluations the whole fit may
    use; ``mapper``: where tasks run (default here); ``progress(evaluations)`` as tasks
    finish; ``generation(state)`` after each finished generation.
    """
    state = read_state(db)
    if state.stopped == "budget" and state.evaluations < budget:
        state.stopped = ""  # resumed with a larger budget: go on
        _update(db, stopped="")
    sampler = Sampler(seed, mapper or InProcess(), settings.min_acceptance, progress)
    model = Model(problem, simulate, state.replicates)
    while not (stopped := stop_reason(state, settings, budget)):
        last = state.generations[-1] if state.generations else None
        sampler.budget = budget - state.evaluations
        sampler.max_eval = settings.population / settings.min_acceptance
        sampler.rate = 1.0 if last is None else last.accepted / max(1, last.evaluations)
        sampler.done = state.evaluations
        abc = _abc(problem, settings, model, sampler)
        with _quiet():
            abc.load(url(db), 1)
            abc.run(max_nr_populations=1)
        if sampler.stopped:  # the generation did not fill: count its evaluations
            _update(db, stopped=sampler.stopped,
                    unfinished=state.evaluations - sum(g.evaluations for g in state.generations)
                    + sampler.nr_evaluations_)
        state = read_state(db, state.generations)
        if not sampler.stopped and generation is not None:
            generation(state)
    state.stopped = stopped
    return state
