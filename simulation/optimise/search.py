"""The search: optuna's CMA-ES, asked and told in whole generations, in a journal.

Why CMA-ES (``CmaEsSampler(seed=, popsize=, lr_adapt=True)``) rather than TPE: the
budgets are a few continuous numbers with a smooth, noisy response, which is what
CMA-ES is built for; a generation of ``popsize`` candidates is a natural batch to run
in parallel and tell together (told one at a time by parallel workers, CMA-ES would
drop the late ones); and ``lr_adapt`` lowers its learning rate when the noise
dominates the signal instead of chasing it. TPE handles the same space but needs many
more trials to place a smooth optimum precisely and parallelises by guessing
("constant liar").

The first trial is the scenario's own split, scaled to the total (when the bounds
allow it; otherwise the centre of the free budget): every later candidate is compared
with it on the same seeds, and it gives CMA-ES its search space.

The journal (``JournalStorage(JournalFileBackend(DIR/optimise.journal))``) records every
trial as it is asked and told. A killed search resumes from it: finished trials are
kept, the generation under way is run again (same candidates, same seeds: the same
figures), and the search goes on exactly as it would have: each generation is asked of
a sampler seeded by (seed, generation), whose state is otherwise the journal's.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simulation.optimise.evaluate import FIGURES, Runs
from simulation.optimise.problem import BudgetProblem
from simulation.scenario import ScenarioError

JOURNAL = "optimise.journal"
STUDY = "distsim-optimise"
SALT_SAMPLER = 7_000_001


def default_popsize(channels: int) -> int:
    """CMA-ES's own default population, 4 + floor(3 ln n), for n free weights."""
    return 4 + int(3 * math.log(channels))


def trials_planned(trials: int, popsize: int) -> int:
    """``trials`` rounded up to the first trial plus whole generations."""
    return 1 + popsize * max(1, math.ceil((trials - 1) / popsize))


@dataclass
class Trials:
    """The finished search: each trial's split (cents), generation, and figures on each
    search seed (trials, seeds, figures)."""

    budgets: np.ndarray
    generation: np.ndarray
    figures: np.ndarray
    objective: str

    @property
    def values(self) -> np.ndarray:
        """The objective on each seed (trials, seeds)."""
        return self.figures[..., FIGURES.index(self.objective)]

    @property
    def means(self) -> np.ndarray:
        return self.values.mean(axis=1)

    @property
    def best(self) -> int:
        """The trial with the best mean on the search seeds (the first among equals)."""
        return int(np.argmax(self.means))


def _optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _storage(out: Path):
    optuna = _optuna()
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return optuna, JournalStorage(JournalFileBackend(str(out / JOURNAL)))


def _sampler(optuna, seed: int, generation: int, popsize: int):
    """The sampler that asks generation ``generation``: seeded by it, so that a resumed
    search asks what an uninterrupted one would have."""
    seq = np.random.SeedSequence(seed, spawn_key=(SALT_SAMPLER, generation))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lr_adapt is marked experimental
        return optuna.samplers.CmaEsSampler(
            seed=int(seq.generate_state(1)[0] >> 1), popsize=popsize, lr_adapt=True,
            n_startup_trials=0, warn_independent_sampling=False)


def check_journal(out: Path, fingerprint: str, resume: bool) -> bool:
    """Whether ``out`` holds a search to resume; refuses, in one line, a folder that
    holds another search or one the user did not ask to resume."""
    path = out / JOURNAL
    if not path.is_file():
        if resume:
            raise ScenarioError("--resume", "", f"{out} holds no search to resume ({JOURNAL})")
        return False
    if not resume:
        raise ScenarioError(str(out), "", f"holds an optimisation ({JOURNAL}): --resume to "
                            "finish it, or another --out")
    optuna, storage = _storage(out)
    try:
        study = optuna.load_study(study_name=STUDY, storage=storage)
    except Exception as exc:  # a journal from elsewhere, or damaged
        raise ScenarioError(str(path), "", f"not a readable optimisation journal "
                            f"({type(exc).__name__})") from None
    if study.user_attrs.get("fingerprint") != fingerprint and study.get_trials(deepcopy=False):
        raise ScenarioError(str(path), "", "an optimisation of another scenario, channels, "
                            "bounds, total, objective or seeds (or another --agents, --days, "
                            "--seed, --replicates, --popsize); use another --out")
    return True


def trials_done(out: Path) -> int:
    """Finished trials in the journal (0 where there is none)."""
    if not (out / JOURNAL).is_file():
        return 0
    optuna, storage = _storage(out)
    study = optuna.load_study(study_name=STUDY, storage=storage)
    complete = optuna.trial.TrialState.COMPLETE
    return sum(t.state == complete for t in study.get_trials(deepcopy=False))


def search(problem: BudgetProblem, runs: Runs, seeds, *, out: Path, fingerprint: str,
           seed: int, trials: int, popsize: int, progress: Callable[[], None] | None = None,
           generation_done: Callable[[int, Trials], None] | None = None) -> Trials:
    """Run (or finish) the search in ``out``'s journal: ``trials`` candidates in all (the
    first, then generations of ``popsize``), each on every seed of ``seeds``."""
    optuna, storage = _storage(out)
    state = optuna.trial.TrialState
    names = list(problem.channels)
    space = {n: optuna.distributions.FloatDistribution(0.0, 1.0) for n in names}
    study = optuna.create_study(study_name=STUDY, storage=storage, direction="maximize",
                                sampler=_sampler(optuna, seed, 0, popsize), load_if_exists=True)
    if not study.get_trials(deepcopy=False):
        study.set_user_attr("popsize", popsize)
        study.set_user_attr("fingerprint", fingerprint)
        start = problem.weights(problem.baseline)
        if start is None:
            start = np.full(len(names), 0.5)
        study.enqueue_trial({n: float(w) for n, w in zip(names, start, strict=True)})
        study.ask(space)

    def evaluate(pending) -> None:
        splits = [problem.split([t.params[n] for n in names]) for t in pending]
        figures = runs([problem.overrides(s) for s in splits], seeds, progress)
        for t, s, f in zip(pending, splits, figures, strict=True):
            t.set_user_attr("budgets", [int(v) for v in s])
            t.set_user_attr("figures", f.tolist())
            study.tell(t, float(f[:, FIGURES.index(problem.objective)].mean()))

    # a generation cut short by a kill: its candidates, again, on the same seeds (and the
    # first trial, if the kill came between queueing and asking it)
    trials_now = study.get_trials(deepcopy=False)
    pending = [optuna.trial.Trial(study, t._trial_id) for t in trials_now
               if t.state == state.RUNNING]
    pending += [study.ask(space) for t in trials_now if t.state == state.WAITING]
    evaluate(pending)
    _report(study, names, problem, generation_done)
    while len(study.get_trials(deepcopy=False)) < trials:
        generation = (len(study.get_trials(deepcopy=False)) - 1) // popsize
        study = optuna.load_study(study_name=STUDY, storage=storage,
                                  sampler=_sampler(optuna, seed, generation + 1, popsize))
        evaluate([study.ask(space) for _ in range(popsize)])
        _report(study, names, problem, generation_done)
    return collect(study, problem)


def _report(study, names, problem, generation_done) -> None:
    if generation_done is not None:
        done = collect(study, problem)
        generation_done(int(done.generation.max()), done)


def collect(study, problem: BudgetProblem) -> Trials:
    """The finished trials, in trial order."""
    finished = [t for t in study.get_trials(deepcopy=False) if t.values is not None]
    return Trials(
        budgets=np.array([t.user_attrs["budgets"] for t in finished], dtype=np.int64),
        generation=np.array([0 if t.number == 0 else 1 + (t.number - 1) // _popsize(study)
                             for t in finished]),
        figures=np.array([t.user_attrs["figures"] for t in finished], dtype=float),
        objective=problem.objective)


def _popsize(study) -> int:
    return int(study.user_attrs.get("popsize", 1))
