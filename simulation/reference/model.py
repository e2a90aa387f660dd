"""ReferenceMarketModel: the same market stepped by one Mesa agent per customer.

The docking partner of :class:`simulation.model.MarketModel`. It shares with the
numba backend what is not per-customer logic: the scenario, the channel, word-of-mouth
and firm agents (each day's reach and effect probabilities per segment and stage), the
strategy components (scaling, positioning, post-purchase) and the result format (the
per-day counter rows the :class:`~simulation.metrics.Recorder` turns into the dataset).
The per-customer rules are :class:`~simulation.reference.customer.Customer`, written
independently of the kernels; the two backends must agree in distribution.

Each day:

1. the components set today's budgets and programme values, every channel plans its
   reach and effects from yesterday's audience;
2. every customer has their day (``AgentSet.do``: customers do not interact within a
   day, so the activation order does not matter);
3. leads queued at capacity-limited channels are served up to capacity, in random order;
4. a census of the population (``AgentSet.groupby``) gives the stage occupancy, which
   the ``DataCollector`` records; channels book their spend, the firm its P&L, and the
   components read the day.

Meant for up to ~100k customers: Mesa agents cost about a kilobyte and a few
microseconds a day each.
"""

from __future__ import annotations

import math
import sys

import mesa
import numpy as np

from simulation import counters, initial
from simulation.counters import MK
from simulation.kernels import day as K
from simulation.kernels.day import CH
from simulation.metrics import Recorder
from simulation.model import (
    MarketShell,
    cohort_counts,
    holdout_shares,
    initial_list_chance,
    order_counts,
)
from simulation.reference.customer import Customer
from simulation.scenario import STAGES, Scenario
from simulation.state import (
    ACTIVE,
    CHURNED,
    CONSENT,
    EXISTING,
    LISTED,
    MEMBER,
    ONBOARDED,
    Population,
)

PROMOTER_HEALTH, DETRACTOR_HEALTH = 0.7, 0.4
"""NPS proxy: active customers at least this healthy promote, below the second detract."""


class Ledger:
    """The day's counters, in the result format's layout (``simulation.kernels.day``)."""

    def __init__(self, n_channels: int, n_segments: int, weeks: int):
        self.nch = n_channels
        self.weeks = weeks
        self.width = counters.width(n_channels, n_segments, weeks)
        self.scalar_offset = counters.market_offset(n_channels, n_segments)
        self.cohort_offset = counters.cohort_offset(n_channels, n_segments)
        self.values = [0.0] * self.width

    def add(self, block: int, channel: int, amount: float = 1.0) -> None:
        self.values[block * self.nch + channel] += amount

    def add_cohort_order(self, channel: int, acquired_day: int) -> None:
        """An order of a customer won in the run, by its acquisition channel and week."""
        week = acquired_day // 7
        if week < self.weeks:
            self.values[self.cohort_offset + channel * self.weeks + week] += 1.0

    def add_scalar(self, which: int, amount: float = 1.0) -> None:
        self.values[self.scalar_offset + which] += amount

    def clear(self) -> None:
        self.values = [0.0] * self.width

    def row(self) -> np.ndarray:
        return np.array(self.values)


class Attribution:
    """Credit for conversions, and for their first order's revenue, under each rule-based
    model; and the journey transitions Markov attribution is computed from."""

    def __init__(self, n_channels: int, half_life: float):
        self.nch = n_channels
        self.half_life = half_life
        # [0, model, channel]: conversions; [1, model, channel]: first-order revenue
        self.credit_by_model = np.zeros((2, len(K.ATTR_MODELS), n_channels))
        # states: 0 start, 1..nch channels, nch+1 conversion, nch+2 no conversion
        self.transitions = np.zeros((n_channels + 3, n_channels + 3))

    def weights(self, journey: list[tuple[int, int]], day: int) -> list[list[float]]:
        """Each model's share of the credit for each touch of the journey."""
        n = len(journey)
        first = [1.0] + [0.0] * (n - 1)
        last = [0.0] * (n - 1) + [1.0]
        linear = [1.0 / n] * n
        decay = [0.5 ** ((day - d) / self.half_life) for _, d in journey]
        time_decay = [w / sum(decay) for w in decay]
        if n == 1:
            position = [1.0]
        elif n == 2:
            position = [0.5, 0.5]
        else:  # 40% to the first and the last touch, 20% spread over the middle
            position = [0.4] + [0.2 / (n - 2)] * (n - 2) + [0.4]
        return [first, last, linear, time_decay, position]  # the order of K.ATTR_MODELS

    def credit(self, journey: list[tuple[int, int]], day: int, revenue: float,
               ledger: Ledger) -> None:
        """Rule-based credit of one conversion over the journey the customer remembers;
        the day's credit also goes to the ledger (roll-out gates and guardrails read it)."""
        if not journey:
            return
        for m, shares in enumerate(self.weights(journey, day)):
            block = getattr(CH, f"credit_{K.ATTR_MODELS[m]}")
            for (c, _), share in zip(journey, shares, strict=True):
                self.credit_by_model[0, m, c] += share
                self.credit_by_model[1, m, c] += share * revenue
                ledger.add(block, c, share)

    def journey_step(self, previous: int | None, c: int) -> None:
        """A touch by channel c on an acquisition journey whose last touch was by channel
        ``previous`` (None: this is its first touch)."""
        self.transitions[self._state(previous), c + 1] += 1.0

    def journey_end(self, previous: int | None, converted: bool) -> None:
        """The journey ends after its last touch (by ``previous``): in the first order, or
        with the run still unconverted."""
        self.transitions[self._state(previous), self.nch + (1 if converted else 2)] += 1.0

    @staticmethod
    def _state(channel: int | None) -> int:
        return 0 if channel is None else channel + 1


class ReferenceMarketModel(MarketShell):
    """A market of ``agents`` customers, each a :class:`Customer`, stepped for ``days`` days.

    ``agents``, ``days`` and ``seed`` override the scenario's ``[simulation]`` table, as for
    :class:`simulation.model.MarketModel`; the same seed gives the same result. The channels,
    word of mouth, the firm, the components and the day's planning and booking come from
    :class:`simulation.model.MarketShell`; only the customers are this backend's own.
    """

    def __init__(self, scenario: Scenario, *, agents: int | None = None, days: int | None = None,
                 seed: int | None = None):
        super().__init__(scenario, agents=agents, days=days, seed=seed)
        scenario = self.scenario
        nseg = len(scenario.segments)
        nch = len(self.marketers)
        self.word_of_mouth_index = nch - 1
        self.read_rules()
        self.ledger = Ledger(nch, nseg, counters.weeks(self.days))
        self.recorder = Recorder(self.days, nch, nseg, self.ledger.width)
        self.attribution = Attribution(nch, scenario.attribution.half_life_days)
        self.offers: list[list[list[tuple]]] = []
        self.effects: list = []
        self.queues: dict[int, list[Customer]] = {}
        self.community_churn_cut = 0.0
        self.events: list[tuple] | None = None

        shares = [s.share for s in scenario.segments]
        opt_out = scenario.post_purchase.opt_out_share
        rand = self.random
        segments = rand.choices(range(nseg), weights=shares, k=self.n)
        consent = [rand.random() >= opt_out for _ in range(self.n)]
        self.customers = Customer.create_agents(self, self.n, list(range(self.n)), segments,
                                                consent)
        chance, needs_consent = initial_list_chance(scenario)
        if chance > 0.0:
            for customer in self.customers:
                if (customer.consented or not needs_consent) and rand.random() < chance:
                    customer.listed = True
        warm = initial.groups(scenario)
        if not warm.empty:
            for customer in self.customers:
                cum = warm.cum[customer.segment]
                k = int(np.searchsorted(cum, rand.random(), side="right"))
                if k < len(cum):
                    customer.start_as(int(warm.kind[k]), int(warm.channel[k]),
                                      int(warm.tenure[k]), warm.member_share)
        self.holdout_size = self._draw_holdouts(scenario)
        self.occupancy = np.zeros((nseg, len(STAGES)))
        for customer in self.customers:
            self.occupancy[customer.segment, customer.stage] += 1.0
        self.start_occupancy = self.occupancy.copy()
        self.post_purchase.members = float(sum(c.member for c in self.customers))
        self.datacollector = mesa.DataCollector(model_reporters={
            **{name: _stage_reporter(s) for s, name in enumerate(STAGES)},
            "mean_health": lambda m: m.mean_health,
            "community_size": lambda m: m.members,
        })
        self.mean_health = math.nan
        self.members = 0

    def _draw_holdouts(self, scenario: Scenario) -> np.ndarray:
        """Each customer's hold-out cells (``channels.NAME.holdout_share``), a draw per
        customer and channel with a hold-out, from a generator of their own (so a hold-out
        shifts no other draw of the run); returns each cell's size."""
        shares = holdout_shares(scenario)
        sizes = np.zeros(len(shares))
        if not any(shares):
            return sizes
        gen = np.random.default_rng([self.seed_value, 0x401D])
        customers = list(self.customers)
        for c, share in enumerate(shares):
            if share <= 0.0:
                continue
            for customer, out in zip(customers, gen.random(self.n) < share, strict=True):
                if out:
                    customer.held |= 1 << c
                    sizes[c] += 1.0
        return sizes

    def read_rules(self) -> None:
        self.capacity = self.rules.capacity
        self.personalised = self.rules.personalised

    # -- the day -----------------------------------------------------------------------

    def step(self) -> None:
        day = self.day
        self.plan_day(day)
        # set today by the post-purchase component, in the rules' record both backends read
        self.community_churn_cut = float(self.par["community_churn_cut"][0])
        self._offers()
        self.ledger.clear()
        self.queues = {c: [] for c, cap in enumerate(self.capacity) if cap is not None}
        self._step_customers()
        self._serve_leads(day)
        self._census(day)
        self.recorder.record(day, self.ledger.row()[None, :])
        self.occupancy = self.recorder.occupancy(day).copy()
        self.datacollector.collect(self)
        self.book_day(day)
        self.day += 1

    def _step_customers(self) -> None:
        self.customers.do("step")

    def _offers(self) -> None:
        """Per segment and stage, the channels that may reach a customer today (as plain
        Python numbers: customers read them millions of times)."""
        reach = self.reach.tolist()
        eff = self.eff.tolist()
        self.effects = eff
        queues = [cap is not None for cap in self.capacity]
        self.offers = [
            [[(c, r, eff[g][s][c], queues[c], self.personalised[c])
              for c, r in enumerate(reach[g][s]) if r > 0.0]
             for s in range(len(STAGES))]
            for g in range(len(reach))
        ]

    def _serve_leads(self, day: int) -> None:
        """Each capacity-limited channel serves as many waiting leads as it can, in random order."""
        for c, queue in self.queues.items():
            self.random.shuffle(queue)
            for customer in queue[: self.capacity_today(c, day)]:
                customer.serve_lead(day)

    def _census(self, day: int) -> None:
        """End-of-day stage occupancy by segment, and the health of active customers."""
        ledger = self.ledger
        base = counters.occupancy_offset(ledger.nch)
        groups = self.customers.groupby(lambda a: (a.segment, a.stage), result_type="list")
        health_sum = promoters = detractors = members = 0.0
        for (g, s), group in groups:
            ledger.values[base + 5 * g + s] = float(len(group))
            if s != ACTIVE:
                continue
            for customer in group:
                for comp in self.components:
                    comp.customer_end_of_day(self, customer, day)
                ledger.add(CH.active, customer.acquired_by)
                if customer.existing:
                    ledger.add(CH.base_active, customer.acquired_by)
                h = customer.health_on(day)
                health_sum += h
                if h >= PROMOTER_HEALTH:
                    promoters += 1.0
                elif h < DETRACTOR_HEALTH:
                    detractors += 1.0
                if customer.member:
                    members += 1.0
        if self.rules.list_channel >= 0:
            ledger.add(CH.list_size, self.rules.list_channel,
                       float(sum(c.listed for c in self.customers)))
        ledger.add_scalar(MK.health_sum, health_sum)
        ledger.add_scalar(MK.promoters, promoters)
        ledger.add_scalar(MK.detractors, detractors)
        ledger.add_scalar(MK.members, members)
        active = sum(len(group) for (_, s), group in groups if s == ACTIVE)
        self.mean_health = health_sum / active if active else math.nan
        self.members = int(members)

    # -- event export ------------------------------------------------------------------

    def sample_events(self, sample: int) -> None:
        """Log every event of ``sample`` customers drawn uniformly (for ``--events``)."""
        if self.day != 0:
            raise RuntimeError("sample_events must be called before the run starts")
        self.events = []
        customers = list(self.customers)
        for i in self.random.sample(range(self.n), min(int(sample), self.n)):
            customers[i].logged = True

    def event_columns(self) -> tuple[np.ndarray, ...]:
        """customer, day, kind, channel, amount, ordered by day then customer."""
        rows = self.events or []
        cols = (np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows], np.int32),
                np.array([r[2] for r in rows], np.int8), np.array([r[3] for r in rows], np.int16),
                np.array([r[4] for r in rows], np.float64))
        order = np.lexsort((cols[0], cols[1]))
        return tuple(c[order] for c in cols)

    # -- results -----------------------------------------------------------------------

    @property
    def population(self) -> Population:
        """The customers' final state as the numba backend's struct-of-arrays (for the
        cohort table and checks that read per-customer ledgers)."""
        pop = Population(self.n)
        for a in self.customers:
            i = a.index
            pop.segment[i] = a.segment
            pop.stage[i] = a.stage
            pop.orders[i] = min(a.orders, 65535)
            pop.revenue[i] = a.revenue
            pop.margin[i] = a.margin
            pop.reached_mask[i] = a.reached
            pop.touches[i] = min(a.touches, 255)
            pop.flags[i] = ((EXISTING if a.existing else 0) | (ONBOARDED if a.onboarded else 0)
                            | (CONSENT if a.consented else 0) | (MEMBER if a.member else 0)
                            | (LISTED if a.listed else 0))
            if a.first_touch is not None:
                pop.first_channel[i], pop.first_day[i] = a.first_touch
            if a.acquired_by is not None:
                pop.acq_channel[i] = a.acquired_by
                if a.acquired_day is not None:  # None: acquired before day 0
                    pop.acquired_day[i] = a.acquired_day
            if a.stage == CHURNED:
                pop.next_day[i] = a.churn_day
        return pop

    def results(self, backend: str = "mesa"):
        nch = len(self.marketers)
        unique = np.zeros(nch, np.int64)
        transitions = Attribution(nch, 1.0)
        for a in self.customers:
            for c in range(nch):
                if a.reached >> c & 1:
                    unique[c] += 1
            if a.acquired_by is None and a.journey_last is not None:
                transitions.journey_end(a.journey_last, converted=False)
        trans = self.attribution.transitions + transitions.transitions
        size = bytes_per_customer(self.customers[0]) if self.n else 0
        pop = self.population
        moments = K.sample_moments(pop.arrays(), nch, (self.n + K.CHUNK - 1) // K.CHUNK)
        return self.dataset(backend, size, self.attribution.credit_by_model.copy(), trans, unique,
                            cohort_counts(pop, self.days, nch), moments.sum(axis=0),
                            order_counts(pop, self.days, nch))


def _stage_reporter(stage: int):
    return lambda m: int(m.occupancy[:, stage].sum())


def bytes_per_customer(agent: Customer) -> int:
    """Rough memory of one customer agent: the object, its attribute dict, its journey,
    and the weak references Mesa keeps to it."""
    size = sys.getsizeof(agent) + sys.getsizeof(vars(agent))
    if agent.recent is not None:
        size += sys.getsizeof(agent.recent) + len(agent.recent) * 64
    return int(size + 2 * 100)


__all__ = ["ReferenceMarketModel", "Customer"]
