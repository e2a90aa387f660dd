"""MarketModel: the Mesa shell that owns the seed and the day loop.

The channels, word of mouth and the firm are Mesa agents (few, readable); the
millions of customers are one struct-of-arrays population stepped by the numba
kernels. Each day:

0. scheduled changes due today put their scenario in force (:meth:`MarketShell.take_effect`);
1. every channel plans its reach from yesterday's audience (``ChannelAgent.plan``);
2. ``step_day`` moves every customer (events, exposures, forgetting), shard by shard
   (:class:`Shard`: one in this process, or several on a Dask cluster's workers,
   :mod:`simulation.sharded`), each returning its rows of the day's counters;
3. leads queued at capacity-limited channels are served up to capacity (the quota of
   each chunk set here, over the market's chunks: :meth:`MarketModel.lead_quota`);
4. the day's counters are reduced, channels book their spend, the firm its P&L.
"""

from __future__ import annotations

import contextlib
import math

import mesa
import numba
import numpy as np

from simulation import counters, initial, rng
from simulation.agents import ChannelAgent, Firm, WordOfMouthAgent
from simulation.components import component_classes
from simulation.events import EventLog, empty_log, in_order, sample_mask
from simulation.kernels import day as K
from simulation.kernels import holdout
from simulation.metrics import MARGIN_COSTS, Recorder, describe, standard_errors
from simulation.parameters import Rules, kernel_parameters
from simulation.scenario import STAGES, Scenario, resolve_size, scheduled, seasonal_factors
from simulation.state import MEMBER, Population

SALT_STEP, SALT_SERVE, SALT_SEGMENT, SALT_CONSENT, SALT_INITIAL, SALT_LIST = 0, 1, 2, 3, 4, 5


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
        self.season = seasonal_factors(scenario, self.days)  # demand, reach, media_price
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

    def close(self) -> None:
        """Release what the run holds outside this process (a sharded market: its shards
        on the cluster); nothing for a market that lives here."""

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
                cohorts: np.ndarray, moments: np.ndarray, histogram: np.ndarray):
        """The result dataset, from the recorder and the backend's attribution, reach,
        cohort counts (:func:`cohort_counts`), the sample's moments
        (:func:`simulation.kernels.day.sample_moments`, summed over the chunks) and the
        orders-per-customer table (:func:`order_counts`)."""
        ds = self.recorder.dataset(self.channel_names, attr, trans, unique,
                                   self.result_attrs(backend, bytes_per_customer),
                                   self.result_extras(), self.scale)
        ds["cohort_retention"] = cohort_retention(cohorts, self.days)
        ds["orders_per_customer"] = orders_per_customer(histogram, self.scale)
        start = self.scenario.simulation.start_date
        if start is not None:  # the calendar: each day's date
            ds = ds.assign_coords(date=("day", np.datetime64(start, "D") + np.arange(self.days)))
        start = self.start_occupancy.sum(axis=0) * self.scale
        ds["stage_count_start"] = ("stage", start.round().astype(np.int64) if self.scale == 1.0
                                   else start)
        ds.update(standard_errors(moments, self.n, self.scale, self.channel_names))
        held = self.holdout_size * self.scale
        ds["holdout_size"] = ("channel", held.round().astype(np.int64) if self.scale == 1.0
                              else held)
        describe(ds)
        return ds


class MarketModel(MarketShell):
    """A market of ``agents`` customers stepped for ``days`` days under one scenario: the
    customers are a struct-of-arrays population stepped by the numba kernels.

    The customers live in :class:`Shard` objects, each a run of whole chunks of the
    market: here one, the whole market, in this process. The day loop below is the only
    one: :class:`simulation.sharded.ShardedMarketModel` runs it unchanged with its shards
    on the workers of a Dask cluster, and differs only in where the shards live
    (:meth:`open_shards`, :meth:`gather`). The driver keeps every per-chunk matrix in the
    market's chunk order, so the recorder's sums, and the result, are the same bit for bit.
    """

    def __init__(self, scenario: Scenario, *, agents: int | None = None, days: int | None = None,
                 seed: int | None = None):
        super().__init__(scenario, agents=agents, days=days, seed=seed)
        scenario = self.scenario
        self.key = rng.seed_key(self.seed_value)
        nch = len(self.marketers)
        nseg = len(scenario.segments)
        self.read_rules()
        self.channel_keys = K.channel_keys(self.channel_names)
        self.n_chunks = (self.n + K.CHUNK - 1) // K.CHUNK
        self.counters = np.zeros((self.n_chunks, counters.width(nch, nseg, counters.weeks(self.days))))
        self.waiting = np.zeros((self.n_chunks, nch), np.int64)
        self.recorder = Recorder(self.days, nch, nseg, self.counters.shape[1])
        self.chunk_ranges = self.shard_chunks()
        self.shards = self.open_shards([
            (lo * K.CHUNK, min(self.n, hi * K.CHUNK) - lo * K.CHUNK) for lo, hi in self.chunk_ranges])
        # day 0's occupancy and community members, summed over the shards (whole counts:
        # the same in any order)
        starts = self._on_shards("starting_state", [()] * len(self.shards))
        self.occupancy = sum(occupancy for occupancy, _, _ in starts)
        self.start_occupancy = self.occupancy.copy()
        self.post_purchase.members = float(sum(members for _, members, _ in starts))
        self.holdout_size = sum(held for _, _, held in starts).astype(np.float64)

    def shard_chunks(self) -> list[tuple[int, int]]:
        """The chunks each shard holds, (first, end) in the market's chunk order."""
        return [(0, self.n_chunks)]

    def open_shards(self, customers: list[tuple[int, int]]) -> list:
        """A shard for each (first customer, count): here, in this process."""
        nch = len(self.marketers)
        return [Shard(self.scenario, self.key, first, count, nch, self.counters.shape[1],
                      self.par, self.segp) for first, count in customers]

    def gather(self, pending: list) -> list:
        """The results of calls made on every shard (here they are the results already)."""
        return pending

    def _on_shards(self, method: str, args: list[tuple]) -> list:
        """Call ``method`` on every shard, shard k with ``args[k]``, all at once; their
        results in shard order."""
        return self.gather([getattr(s, method)(*a) for s, a in zip(self.shards, args, strict=True)])

    @property
    def population(self) -> Population:
        """The customers' state (the whole market's arrays, held in this process)."""
        (shard,) = self.shards
        return shard.population

    def read_rules(self) -> None:
        self.capacity = np.array([-1 if c is None else c for c in self.rules.capacity], np.int64)
        self.forget = np.array(self.rules.forget, dtype=np.float64)

    def step(self) -> None:
        day = self.day
        self.plan_day(day)
        reachable = (self.reach > 0.0).any(axis=2)
        key = rng.day_key(self.key, day, SALT_STEP)
        exposure = np.stack([rng.odds(self.reach), rng.odds(self.reach * self.eff)], axis=-1)
        chday = rng.day_decision_keys(key, self.channel_keys)
        today = (day, key, exposure, reachable, chday, self.forget, self.par, self.mechanisms,
                 self.segp, self.chp)
        rows = self._on_shards("step", [today] * len(self.shards))
        for (lo, hi), (cnt, waiting) in zip(self.chunk_ranges, rows, strict=True):
            self.counters[lo:hi] = cnt
            self.waiting[lo:hi] = waiting
        if (self.capacity >= 0).any():
            quota = self.lead_quota(day)
            key = rng.day_key(self.key, day, SALT_SERVE)
            rows = self._on_shards("serve", [
                (day, key, quota[lo:hi], self.eff, self.par, self.mechanisms, self.segp, self.chp)
                for lo, hi in self.chunk_ranges])
            for (lo, hi), cnt in zip(self.chunk_ranges, rows, strict=True):
                self.counters[lo:hi] = cnt
        self.recorder.record(day, self.counters)
        self.occupancy = self.recorder.occupancy(day).copy()
        self.book_day(day)
        self.day += 1

    def lead_quota(self, day: int) -> np.ndarray:
        """Leads each chunk serves today per channel: each channel's capacity split over
        the chunks' waiting leads, chunk by chunk in the market's order from a rotating
        chunk (so no chunk is always served last)."""
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
        return quota

    def sample_events(self, sample: int) -> None:
        """Log every event of ``sample`` customers drawn uniformly (for ``--events``).

        Call before the first step. The sample is drawn from the run seed, so the same
        seed exports the same customers.
        """
        if self.day != 0:
            raise RuntimeError("sample_events must be called before the run starts")
        mask = sample_mask(self.n, sample, self.key)
        self._on_shards("sample_events", [
            (mask[lo * K.CHUNK: hi * K.CHUNK],) for lo, hi in self.chunk_ranges])

    def event_columns(self) -> tuple[np.ndarray, ...]:
        """customer, day, kind, channel, amount of the sampled customers' events."""
        return in_order(self._on_shards("drained_events", [()] * len(self.shards)))

    def results(self, backend: str = "numba"):
        parts = self._on_shards("totals", [(self.days,)] * len(self.shards))
        attr = np.concatenate([p[0] for p in parts])  # per chunk, in the market's order
        trans = np.concatenate([p[1] for p in parts])
        unique = sum(p[2] for p in parts)
        cohorts = sum(p[3] for p in parts)
        moments = np.concatenate([p[4] for p in parts])  # per chunk, in the market's order
        nbytes = sum(p[5] for p in parts)
        histogram = sum(p[6] for p in parts)
        return self.dataset(backend, nbytes // self.n, attr.sum(axis=0), trans.sum(axis=0),
                            unique, cohorts, moments.sum(axis=0), histogram)


class Shard:
    """The customers ``first`` ... ``first + count - 1`` of a market, in whole chunks, and
    what the kernels accumulate over them (the day's counter rows, the leads waiting,
    attribution credit, journey transitions, the event log of sampled customers).

    The model sends each day's plan (small arrays) and gets back the shard's rows of the
    per-chunk counters: the population never leaves the shard. Every draw is keyed by the
    market index (``first + i``), so a shard steps its customers exactly as the whole
    market would. Day 0 comes from :func:`populate`. ``threads`` caps the numba threads
    of each call (a shard on a cluster worker; None: leave them as they are).
    """

    def __init__(self, scenario: Scenario, key, first: int, count: int, n_channels: int,
                 width: int, market: np.ndarray, segp: np.ndarray, threads: int | None = None):
        self.first = int(first)
        self.threads = threads
        self.population = Population(count)
        n_chunks = (count + K.CHUNK - 1) // K.CHUNK
        self.n_chunks = n_chunks
        self.n_channels = n_channels
        self.counters = np.zeros((n_chunks, width))
        self.attr = np.zeros((n_chunks, 2, len(K.ATTR_MODELS), n_channels))
        self.trans = np.zeros((n_chunks, n_channels + 3, n_channels + 3))
        self.waiting = np.zeros((n_chunks, n_channels), np.int64)
        self.events: EventLog | None = None
        self.log = empty_log(n_chunks)
        # the hold-out cells: a hash away for any customer, so the shard derives them itself
        self.hold = holdout.hold(key, scenario.channel_names, holdout_shares(scenario))
        self.holding = holdout.holding(self.hold)
        with self._threads():
            self.occupancy = populate(self.population, scenario, key, self.first, market, segp)
            self.holdout_size = holdout.sizes(count, self.first, self.hold, self.holding,
                                              n_chunks, K.CHUNK)

    def _threads(self):
        return numba_threads(self.threads)

    def call(self, method: str, args: tuple):
        """``method(*args)``: how a model calls a shard on a cluster worker, the arguments
        as one message (Dask serialises each argument of an actor's call apart: a
        day's ten small arrays took longer to send that way than the exchange itself)."""
        return getattr(self, method)(*args)

    def starting_state(self) -> tuple[np.ndarray, int, np.ndarray]:
        """Day 0's customers by (segment, stage), its community members, and its customers
        in each channel's hold-out cell."""
        return (self.occupancy, int(np.count_nonzero(self.population.flags & MEMBER)),
                self.holdout_size)

    def step(self, day, key, exposure, reachable, chday, forget, par, mech, segp, chp):
        """The customers' day (:func:`simulation.kernels.day.step_day`): returns the shard's
        rows of the day's counters and of the leads waiting at each channel."""
        if self.events is not None:
            self.events.collect(self.log)  # yesterday's
        self.counters.fill(0.0)
        self.waiting.fill(0)
        with self._threads():
            K.step_day(day, key, self.first, self.population.arrays(), exposure, reachable,
                       chday, forget, par, mech, segp, chp, self.counters, self.attr,
                       self.trans, self.waiting, self.log, self.hold, self.holding)
        return self.counters, self.waiting

    def serve(self, day, key, quota, eff, par, mech, segp, chp):
        """Serve the shard's waiting leads up to its chunks' ``quota`` rows
        (:func:`simulation.kernels.day.serve_leads`): returns its counter rows."""
        with self._threads():
            K.serve_leads(day, key, self.first, quota, self.population.arrays(), eff, par,
                          mech, segp, chp, self.counters, self.attr, self.trans, self.log,
                          self.hold, self.holding)
        return self.counters

    def sample_events(self, mask: np.ndarray) -> None:
        """Log the events of the customers ``mask`` marks (the shard's slice of
        :func:`simulation.events.sample_mask`)."""
        self.events = EventLog(mask, self.n_chunks, self.n_channels, self.first)
        self.log = self.events.buffers

    def drained_events(self) -> tuple[np.ndarray, ...]:
        """The sampled customers' events so far (market indices)."""
        self.events.collect(self.log)
        return self.events.drained()

    def totals(self, days: int) -> tuple:
        """What the result needs of the shard's customers, as counts that add up across
        shards: attribution credit and journey transitions per chunk (with the journeys
        that never converted ended), customers ever reached per channel, the cohort
        table's counts (:func:`cohort_counts`), the sample's moments per chunk
        (:func:`simulation.kernels.day.sample_moments`), the population's bytes and the
        orders-per-customer table (:func:`order_counts`)."""
        pop = self.population
        with self._threads():
            trans = self.trans.copy()
            K.unconverted_journeys(pop.arrays(), trans)
            unique = K.unique_reach(pop.reached_mask, self.n_channels, self.n_chunks)
            moments = K.sample_moments(pop.arrays(), self.n_channels, self.n_chunks)
        return (self.attr, trans, unique, cohort_counts(pop, days, self.n_channels), moments,
                pop.nbytes, order_counts(pop, days, self.n_channels))


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
    chance, needs_consent = initial_list_chance(scenario)
    if chance > 0.0:
        K.assign_list(pop.flags, chance, needs_consent, rng.day_key(key, 0, SALT_LIST), first)
    warm = initial.groups(scenario)
    if not warm.empty:
        K.warm_start(pop.arrays(), rng.day_key(key, 0, SALT_INITIAL), first, warm.cum,
                     warm.kind, warm.channel, warm.tenure, warm.member_share, market, segp)
    occupancy = np.zeros((nseg, len(STAGES)))
    np.add.at(occupancy, (pop.segment, pop.stage), 1.0)
    return occupancy


def holdout_shares(scenario: Scenario) -> list[float]:
    """Each result channel's ``holdout_share`` (word of mouth has none)."""
    return [c.holdout_share for c in scenario.channels] + [0.0]


def initial_list_chance(scenario: Scenario) -> tuple[float, bool]:
    """Each eligible customer's chance of being on the firm's list on day 0, and whether
    only the consenting are eligible (a personalised list channel): ``initial.list_size``
    over the eligible people, so the expected list is the size asked for."""
    c = scenario.list_channel()
    size = scenario.initial.list_size
    if c < 0 or size <= 0.0:
        return 0.0, False
    consent = scenario.channels[c].personalised
    share = 1.0 - scenario.post_purchase.opt_out_share if consent else 1.0
    return min(1.0, size / (scenario.market.size * share)), consent


def cohort_counts(pop: Population, days: int, n_channels: int) -> np.ndarray:
    """Customers of each acquisition channel's weekly cohort by the number of whole weeks
    they stayed customers: ``counts[channel, cohort_week, weeks]`` (``weeks`` capped at
    the run's weeks). Counts of a part of the market add up to the whole's, so a sharded
    run sends this table, never per-customer arrays; :func:`cohort_retention` turns it
    into shares. Vectorised over the population.

    A customer stays through week k if still a customer at the end of day
    ``acquired + 7k``: churned (the last time) after that day, or active at the end.
    """
    from simulation.state import CHURNED, EXISTING, NO_CHANNEL

    weeks = counters.weeks(days)
    bought = (pop.acq_channel != NO_CHANNEL) & ((pop.flags & EXISTING) == 0)  # the run's
    acq = pop.acq_channel[bought].astype(np.int64)
    start = pop.acquired_day[bought].astype(np.int64)
    stage = pop.stage[bought]
    churn_day = pop.next_day[bought].astype(np.int64)
    # retained at week k = still a customer at the end of day start + 7k: a churned customer
    # until the day before its churn day, an active one through the last day of the run
    lived = np.where(stage == CHURNED, (churn_day - start + 6) // 7, (days - 1 - start) // 7 + 1)
    lived = np.clip(lived, 0, weeks)
    counts = np.zeros((n_channels, weeks, weeks + 1))
    np.add.at(counts, (acq, start // 7, lived), 1.0)
    return counts


ORDERS_TOP = 20
"""The orders-per-customer table counts 1, 2, ... ``ORDERS_TOP - 1`` orders one by one and
``ORDERS_TOP`` or more together (the top bin)."""


def order_counts(pop: Population, days: int, n_channels: int) -> np.ndarray:
    """Customers acquired in the run by acquisition channel, weekly acquisition cohort and
    the orders they placed by the end of the run (first order included, the top bin
    ``ORDERS_TOP`` or more): ``counts[channel, cohort_week, orders - 1]``.

    The repeat-purchase story (how many buy again, how often) is in this table rather
    than in the daily flows, which mix every cohort's orders: a calibration that must
    tell purchase rates from drop-out needs the spread of orders per customer, as
    BG/NBD-style tools do. Counts of a part of the market add up to the whole's, as
    :func:`cohort_counts`'s do.
    """
    from simulation.state import EXISTING, NO_CHANNEL

    weeks = counters.weeks(days)
    bought = (pop.acq_channel != NO_CHANNEL) & ((pop.flags & EXISTING) == 0)
    acq = pop.acq_channel[bought].astype(np.int64)
    start = pop.acquired_day[bought].astype(np.int64)
    placed = np.clip(pop.orders[bought].astype(np.int64), 1, ORDERS_TOP)
    counts = np.zeros((n_channels, weeks, ORDERS_TOP))
    np.add.at(counts, (acq, start // 7, placed - 1), 1.0)
    return counts


def orders_per_customer(counts: np.ndarray, scale: float):
    """:func:`order_counts`'s table in market units, as the result's variable."""
    import xarray as xr

    value = counts * scale
    if scale == 1.0:
        value = value.round().astype(np.int64)
    return xr.DataArray(value, dims=("channel", "cohort_week", "orders_placed"),
                        coords={"cohort_week": np.arange(counts.shape[1]),
                                "orders_placed": np.arange(1, counts.shape[2] + 1)})


def cohort_retention(counts: np.ndarray, days: int):
    """Share of each weekly acquisition cohort still a customer k weeks after acquisition,
    by acquisition channel (NaN where the run ended before week k of the cohort), from
    :func:`cohort_counts`'s table (summed over the market's shards)."""
    import xarray as xr

    weeks = counts.shape[1]
    size = counts.sum(axis=2)  # every member stayed some number of weeks, 0 ... weeks
    # retained at week k = cohort size - those whose retained span ended at or before k
    retained = size[:, :, None] - np.cumsum(counts, axis=2)[:, :, :weeks]
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


@contextlib.contextmanager
def numba_threads(threads: int | None):
    """``threads`` numba threads inside the block (None: as they are). The count is the
    calling thread's own in numba, so a shard on a cluster worker sets it on each call."""
    if threads is None:
        yield
        return
    previous = set_threads(threads)
    try:
        yield
    finally:
        set_threads(previous)
