"""MarketModel: the Mesa shell that owns the seed and the day loop.

The channels, word of mouth and the firm are Mesa agents (few, readable); the
millions of customers are one struct-of-arrays population stepped by the numba
kernels. Each day:

0. scheduled changes due today put their scenario in force (:meth:`MarketShell.take_effect`);
1. every channel plans its reach from yesterday's audience (``ChannelAgent.plan``);
2. ``step_day`` moves every customer (events, exposures, forgetting);
3. leads queued at capacity-limited channels are served up to capacity;
4. the day's counters are reduced, channels book their spend, the firm its P&L.
"""

from __future__ import annotations

import math

import mesa
import numba
import numpy as np

from simulation import counters, initial, rng
from simulation.agents import ChannelAgent, Firm, WordOfMouthAgent
from simulation.components import component_classes
from simulation.events import EventLog, empty_log
from simulation.kernels import day as K
from simulation.kernels.events import L_COUNT
from simulation.metrics import MARGIN_COSTS, Recorder, describe, standard_errors
from simulation.parameters import Rules, kernel_parameters
from simulation.scenario import STAGES, Scenario, resolve_size, scheduled
from simulation.state import MEMBER, Population

SALT_STEP, SALT_SERVE, SALT_SEGMENT, SALT_CONSENT, SALT_INITIAL = 0, 1, 2, 3, 4


class MarketShell(mesa.Model):
    """What every backend's market shares: the seed, the channels, word of mouth and the
    firm (Mesa agents), the strategy components, and the day's planning and booking.

    A backend adds the customers: it steps them between :meth:`plan_day` and
    :meth:`book_day`. ``agents``, ``days`` and ``seed`` override the scenario's
    ``[simulation]`` table; the resolved scenario (what actually runs) is what the
    result's ``scenario`` attribute holds. A value outside the schema's limits raises
    :class:`ScenarioError`.
    """

    def __init__(self, scenario: Scenario, *, agents: int | None = None, days: int | None = None,
                 seed: int | None = None):
        scenario = resolve_size(scenario, agents, days, seed)
        sim = scenario.simulation
        self.n = sim.agents
        self.days = sim.days
        self.seed_value = sim.seed
        super().__init__(seed=self.seed_value)
        self.scenario = scenario
        self.scale = scenario.scale  # people each simulated customer stands for
        self.in_force = scenario  # today's: the run's, with the changes that took effect
        # the scenario in force from each change's day on, validated now; days the run reaches
        self.pending_changes = [(d, sc) for d, sc in scheduled(scenario) if d < self.days]
        self.day = 0
        self.components = [cls(self) for cls in component_classes()]
        for comp in self.components:
            if hasattr(self, comp.name):
                raise TypeError(f"component name {comp.name!r} is already a model attribute")
            setattr(self, comp.name, comp)  # model.scaling, model.positioning, ...
        # the customer-level rules, for both backends; the kernels' records of them are also
        # where components write daily values (the community's churn cut)
        self.rules = Rules.from_scenario(scenario, self.post_purchase)
        self.par, self.segp, self.chp = kernel_parameters(self.rules)
        self.mechanisms = K.Mechanisms(**{
            c.name: p for c in self.components if (p := c.kernel_parameters()) is not None})
        self.firm = Firm(self)
        self.channel_agents = [ChannelAgent(self, c, i) for i, c in enumerate(scenario.channels)]
        self.word_of_mouth = WordOfMouthAgent(self)
        self.marketers = [*self.channel_agents, self.word_of_mouth]
        self.channel_names = scenario.channel_names
        nch, nseg = len(self.marketers), len(scenario.segments)
        self.reach = np.zeros((nseg, len(STAGES), nch))
        self.eff = np.zeros((nseg, len(STAGES), nch))

    def take_effect(self, scenario: Scenario, day: int) -> None:
        """Put ``scenario`` in force from ``day`` on (a scheduled change): the rules both
        backends read, the components' and the agents' configuration. What the run has
        built (customers, equity, launches, members) stays; fields that could not change
        this way are refused when the scenario loads (``FIXED_DURING_RUN``)."""
        self.in_force = scenario
        for comp in self.components:
            comp.configure(self, scenario, day)
        self.rules = Rules.from_scenario(scenario, self.post_purchase)
        self.par, self.segp, self.chp = kernel_parameters(self.rules)
        self.mechanisms = K.Mechanisms(**{
            c.name: p for c in self.components if (p := c.kernel_parameters()) is not None})
        for a in self.marketers:
            a.configure(scenario)
        self.read_rules()

    def read_rules(self) -> None:
        """What a backend derives from ``self.rules`` for its own loop (at the start, and
        again when a change puts new rules in force)."""

    def plan_day(self, day: int) -> None:
        """Changes due today take effect; components set the day up; every channel plans
        its reach and effects."""
        while self.pending_changes and self.pending_changes[0][0] == day:
            self.take_effect(self.pending_changes.pop(0)[1], day)
        for comp in self.components:
            comp.before_day(self, day)
        for c, a in enumerate(self.marketers):
            self.reach[:, :, c] = a.plan(day, self.occupancy)
            self.eff[:, :, c] = a.effects

    def book_day(self, day: int) -> None:
        """Channels book their spend, the firm its P&L; the components read the day."""
        rec = self.recorder
        reached = rec.channel("reached", day)
        marketing = 0.0
        for c, a in enumerate(self.marketers):
            media, fixed = a.book(reached[c])
            rec.media[day, c] = media
            rec.fixed[day, c] = fixed
            marketing += media + fixed
        k = self.scale  # the customers' money is the sample's; the firm's, the market's
        rev = k * rec.channel("revenue", day).sum()
        costs = k * sum(rec.channel(b, day).sum() for b in MARGIN_COSTS)
        programmes = (k * rec.channel("programme_cost", day).sum()
                      + sum(comp.daily_cost(day) for comp in self.components))
        self.firm.book(rev, rev - costs, marketing, programmes)
        for comp in self.components:
            comp.after_day(self, day)

    def capacity_today(self, c: int, day: int) -> int:
        """Leads channel c serves today, in simulated customers (-1: no capacity limit).

        A capacity is people a day; in the sample it is ``capacity / scale``, rounded up
        or down by a draw keyed by (seed, day, channel) so that its mean is exact (9 a day
        at scale 4 serves 2 or 3, 2.25 on average) and both backends serve the same.
        """
        cap = self.rules.capacity[c]
        if cap is None:
            return -1
        x = cap / self.scale
        whole = math.floor(x)
        if x > whole and np.random.default_rng((self.seed_value, day, c, 0xCA9)).random() < x - whole:
            whole += 1
        return whole

    def gross_margin_to_date(self, c: int, day: int) -> float:
        """Gross margin booked so far to customers acquired through channel c."""
        return float(self.recorder.gross_margin()[: day + 1, c].sum())

    def run_model(self, progress=None) -> None:
        for _ in range(self.days - self.day):
            self.step()
            if progress is not None:
                progress(self.day, self.days)

    def result_attrs(self, backend: str, bytes_per_customer: int) -> dict:
        from simulation.version import __version__

        return {
            "scenario": self.scenario.to_toml(),
            "scenario_name": self.scenario.name,
            "seed": self.seed_value,
            "agents": self.n,
            "market_size": int(self.scenario.market.size),
            "days": self.days,
            "backend": backend,
            "simulation_version": __version__,
            "bytes_per_customer": int(bytes_per_customer),
            "time_decay_half_life_days": float(self.scenario.attribution.half_life_days),
            "segments": [s.name for s in self.scenario.segments],
        }

    def result_extras(self) -> dict:
        """Daily series kept by the components, for the result dataset."""
        extras: dict = {}
        for comp in self.components:
            extras.update(comp.results())
        return extras

    def dataset(self, backend: str, bytes_per_customer: int, attr, trans, unique,
                population: Population):
        """The result dataset, from the recorder and the backend's attribution and population."""
        ds = self.recorder.dataset(self.channel_names, attr, trans, unique,
                                   self.result_attrs(backend, bytes_per_customer),
                                   self.result_extras(), self.scale)
        ds["cohort_retention"] = cohort_retention(population, self.days, self.channel_names)
        n_chunks = (self.n + K.CHUNK - 1) // K.CHUNK
        moments = K.sample_moments(population.arrays(), len(self.channel_names), n_chunks)
        ds.update(standard_errors(moments.sum(axis=0), self.n, self.scale, self.channel_names))
        describe(ds)
        return ds


class MarketModel(MarketShell):
    """A market of ``agents`` customers stepped for ``days`` days under one scenario: the
    customers are a struct-of-arrays population stepped by the numba kernels."""

    def __init__(self, scenario: Scenario, *, agents: int | None = None, days: int | None = None,
                 seed: int | None = None):
        super().__init__(scenario, agents=agents, days=days, seed=seed)
        scenario = self.scenario
        self.key = rng.seed_key(self.seed_value)
        self.population = Population(self.n)
        nch = len(self.marketers)
        nseg = len(scenario.segments)
        self.read_rules()
        self.channel_keys = K.channel_keys(self.channel_names)
        self.n_chunks = (self.n + K.CHUNK - 1) // K.CHUNK
        self.counters = np.zeros((self.n_chunks, counters.width(nch, nseg)))
        self.attr = np.zeros((self.n_chunks, 2, len(K.ATTR_MODELS), nch))
        self.trans = np.zeros((self.n_chunks, nch + 3, nch + 3))
        self.events = None
        self.log = empty_log(self.n_chunks)
        self.waiting = np.zeros((self.n_chunks, nch), np.int64)
        self.recorder = Recorder(self.days, nch, nseg, self.counters.shape[1])
        self.occupancy = populate(self.population, scenario, self.key, 0, self.par, self.segp)
        self.post_purchase.members = float(
            np.count_nonzero(self.population.flags & MEMBER))

    def read_rules(self) -> None:
        self.capacity = np.array([-1 if c is None else c for c in self.rules.capacity], np.int64)
        self.forget = np.array(self.rules.forget, dtype=np.float64)

    def step(self) -> None:
        day = self.day
        self.plan_day(day)
        reachable = (self.reach > 0.0).any(axis=2)
        self.counters.fill(0.0)
        self.waiting.fill(0)
        pop = self.population.arrays()
        if self.events is not None:
            self.log[L_COUNT].fill(0)
        key = rng.day_key(self.key, day, SALT_STEP)
        exposure = np.stack([rng.odds(self.reach), rng.odds(self.reach * self.eff)], axis=-1)
        chday = rng.day_decision_keys(key, self.channel_keys)
        K.step_day(day, key, pop, exposure, reachable, chday, self.forget, self.par,
                   self.mechanisms, self.segp, self.chp, self.counters, self.attr, self.trans,
                   self.waiting, self.log)
        if (self.capacity >= 0).any():
            self._serve_leads(day, pop)
        if self.events is not None:
            self.events.collect(self.log)
        self.recorder.record(day, self.counters)
        self.occupancy = self.recorder.occupancy(day).copy()
        self.book_day(day)
        self.day += 1

    def _serve_leads(self, day: int, pop: tuple) -> None:
        """Split each channel's daily capacity over chunks, starting at a rotating chunk."""
        waiting = self.waiting
        quota = np.zeros_like(waiting)
        order = np.roll(np.arange(self.n_chunks), -(day % self.n_chunks))
        for c in np.flatnonzero(self.capacity >= 0):
            left = self.capacity_today(int(c), day)
            for ch in order:
                take = min(left, int(waiting[ch, c]))
                quota[ch, c] = take
                left -= take
                if left == 0:
                    break
        K.serve_leads(day, rng.day_key(self.key, day, SALT_SERVE), quota, pop, self.eff,
                      self.par, self.mechanisms, self.segp, self.chp, self.counters, self.attr,
                      self.trans, self.log)

    def sample_events(self, sample: int) -> None:
        """Log every event of ``sample`` customers drawn uniformly (for ``--events``).

        Call before the first step. The sample is drawn from the run seed, so the same
        seed exports the same customers.
        """
        if self.day != 0:
            raise RuntimeError("sample_events must be called before the run starts")
        self.events = EventLog(self.n, self.n_chunks, len(self.marketers), sample, self.key)
        self.log = self.events.buffers

    def event_columns(self) -> tuple[np.ndarray, ...]:
        """customer, day, kind, channel, amount of the sampled customers' events."""
        return self.events.columns()

    def results(self, backend: str = "numba"):
        nch = len(self.marketers)
        unique = K.unique_reach(self.population.reached_mask, nch, self.n_chunks)
        trans = self.trans.copy()
        K.unconverted_journeys(self.population.arrays(), trans)
        return self.dataset(backend, self.population.nbytes // self.n, self.attr.sum(axis=0),
                            trans.sum(axis=0), unique, self.population)


def populate(pop: Population, scenario: Scenario, key: int, first: int, market: np.ndarray,
             segp: np.ndarray) -> np.ndarray:
    """Each customer's state on day 0 (segment, consent, and where ``[initial]`` says the
    market is already running, their stage and purchase state), for the customers
    ``first``, ``first + 1``, ... of the market, each from their own keyed stream: a part
    of the market gets exactly what the whole would for the same customers. ``market``
    and ``segp`` are the kernels' rule records. Returns the occupancy by (segment, stage)."""
    nseg = len(scenario.segments)
    cum = np.cumsum([s.share for s in scenario.segments])
    cum[-1] = 1.0
    K.assign_segments(pop.segment, cum, rng.day_key(key, 0, SALT_SEGMENT), first)
    K.assign_consent(pop.flags, scenario.post_purchase.opt_out_share,
                     rng.day_key(key, 0, SALT_CONSENT), first)
    warm = initial.groups(scenario)
    if not warm.empty:
        K.warm_start(pop.arrays(), rng.day_key(key, 0, SALT_INITIAL), first, warm.cum,
                     warm.kind, warm.channel, warm.tenure, warm.member_share, market, segp)
    occupancy = np.zeros((nseg, len(STAGES)))
    np.add.at(occupancy, (pop.segment, pop.stage), 1.0)
    return occupancy


def cohort_retention(pop: Population, days: int, channels: list[str]):
    """Share of each weekly acquisition cohort still a customer k weeks after acquisition,
    by acquisition channel (NaN where the run ended before week k of the cohort).

    A customer is retained at week k if still a customer at the end of day
    ``acquired + 7k``: churned (the last time) after that day, or active at the end.
    Vectorised over the population.
    """
    import xarray as xr

    from simulation.state import CHURNED, EXISTING, NO_CHANNEL

    weeks = (days + 6) // 7
    bought = (pop.acq_channel != NO_CHANNEL) & ((pop.flags & EXISTING) == 0)  # the run's
    acq = pop.acq_channel[bought].astype(np.int64)
    start = pop.acquired_day[bought].astype(np.int64)
    stage = pop.stage[bought]
    churn_day = pop.next_day[bought].astype(np.int64)
    # retained at week k = still a customer at the end of day start + 7k: a churned customer
    # until the day before its churn day, an active one through the last day of the run
    lived = np.where(stage == CHURNED, (churn_day - start + 6) // 7, (days - 1 - start) // 7 + 1)
    lived = np.clip(lived, 0, weeks)
    cohort = start // 7
    nch = len(channels)
    size = np.zeros((nch, weeks))
    np.add.at(size, (acq, cohort), 1.0)
    ended = np.zeros((nch, weeks, weeks + 1))
    np.add.at(ended, (acq, cohort, lived), 1.0)
    # retained at week k = cohort size - those whose retained span ended at or before k
    retained = size[:, :, None] - np.cumsum(ended, axis=2)[:, :, :weeks]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = retained / size[:, :, None]
    k = np.arange(weeks)
    # a cell counts only when every member's day start + 7k lies within the run
    observable = (np.arange(weeks)[:, None] * 7 + 6 + k[None, :] * 7) <= days - 1
    share = np.where(observable[None, :, :], share, np.nan)
    return xr.DataArray(share, dims=("channel", "cohort_week", "weeks_since"),
                        coords={"cohort_week": np.arange(weeks), "weeks_since": k},
                        attrs={"description": "share of a weekly acquisition cohort still a "
                                              "customer k weeks later, by acquisition channel"})


def set_threads(threads: int | None) -> int:
    """Use ``threads`` numba threads (at most NUMBA_NUM_THREADS); returns the previous count."""
    previous = numba.get_num_threads()
    if threads is not None:
        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    return previous
