"""Scaling strategies: launch days, budget ramps, staged roll-out and guardrails.

Fast scaling breaks in ways the other mechanisms carry: reach saturates with
spend (Poisson reach), the marginal audience is less aligned (``dilution``),
novelty fades (``novelty``) and capacity-limited channels queue and lose leads.
This component decides, each day, whether a channel runs and with what budget,
and applies the guardrails once their validation window has passed so that
small samples and novelty do not trigger them.
"""

from __future__ import annotations

import math

import numpy as np

from simulation.components import Component
from simulation.scenario import Channel, Guardrail, Scenario

NO_ACTION, PAUSED, HELD, SCALED = 0, 1, 2, 3


def scheduled_budget(cfg: Channel, t: int) -> float:
    """Budget ``t`` days after launch under the channel's schedule (before guardrails)."""
    sch = cfg.schedule
    b0 = cfg.daily_budget
    if sch.kind == "constant":
        b = b0
    elif sch.kind == "linear":
        b = b0 + (sch.end_budget - b0) * min(1.0, t / sch.ramp_days)
    elif sch.kind == "exponential":
        b = b0 * math.pow(1.0 + sch.growth, t)
    else:
        b = b0
        for day, budget in sch.steps:
            if t >= day:
                b = budget
    if sch.cap is not None:
        b = min(b, sch.cap)
    return max(0.0, b)


def credited(model, credit: str) -> np.ndarray:
    """(day, channel) customers credited to each channel by ``credit`` so far, in
    simulated customers: what a roll-out gate or a guardrail counts (a sum over days;
    :func:`won` clamps it). An attribution model's daily credit, or :func:`lift_credit`."""
    if credit == "lift":
        return lift_credit(model)
    return model.recorder.channel(f"credit_{credit}")


def lift_credit(model) -> np.ndarray:
    """(day, channel) incremental customers of each channel measured on its hold-out cell,
    day by day, so that a sum over any run of days is the lift over those days.

    Over a set of days, with ``n_held`` customers in channel c's cell (day 0's count) of
    ``N`` agents, ``conv_held`` conversions (new customers, by any channel) among them and
    ``conv`` in the whole market, the cell's conversion rate is what the others would have
    converted at without c, so c's incremental customers among the ``n_out = N − n_held``
    it may reach are::

        (conv_out / n_out − conv_held / n_held) × n_out,   conv_out = conv − conv_held

    which is linear in the day's counts: ``conv − conv_held × N / n_held`` a day. A channel
    without a cell (or an empty one) is credited nothing. May be negative: the lift of a
    channel that does nothing is 0 give or take its sampling error."""
    rec = model.recorder
    conv = rec.channel("conversions").sum(axis=1)
    held = rec.channel("holdout_conversions")
    n_held = np.asarray(model.holdout_size, dtype=np.float64)
    out = np.zeros_like(held)
    for c in np.flatnonzero(n_held > 0):
        out[:, c] = conv - held[:, c] * (model.n / n_held[c])
    return out


def won(model, credit: str, c: int, lo: int, hi: int) -> float:
    """People credited to channel c over days ``lo`` ... ``hi - 1``: the market's (times
    ``scale``). A negative lift credits no one."""
    return max(0.0, model.scale * float(credited(model, credit)[lo:hi, c].sum()))


class Scaling(Component):
    """Which channels run today and with what budget."""

    name = "scaling"
    order = 10

    def __init__(self, model):
        sc: Scenario = model.scenario
        n = len(sc.channels)
        self.days = model.days
        self.index = {c.name: i for i, c in enumerate(sc.channels)}
        self.launched = np.full(n, -1)  # actual launch day, -1 not yet
        self.paused = np.zeros(n, bool)
        self.held = np.full(n, np.nan)  # budget frozen by a 'hold' guardrail
        self.multiplier = np.ones(n)
        self.schedule_from = np.full(n, -1)  # day a changed schedule starts; -1: the launch
        self.set_budget = np.full(n, np.nan)  # a daily budget a change set: it wins
        self.budget = np.zeros((model.days, n + 1))
        self.action = np.zeros((model.days, n + 1), np.int8)
        self.running_days = np.zeros((model.days, n + 1), np.int8)
        self.configure(model, sc, 0)

    def configure(self, model, sc: Scenario, day: int) -> None:
        """Channels, roll-out and guardrails from ``day`` on; launches, pauses, holds and
        multipliers already decided stay (a channel re-enabled resumes its schedule).

        A change wins over a budget schedule on and after its day: a new ``daily_budget``
        alone is the channel's budget from then on (the schedule no longer ramps it); a
        new ``schedule`` starts on the change's day, from the ``daily_budget`` then in
        force."""
        if day > 0:
            for c, (old, new) in enumerate(zip(self.channels, sc.channels, strict=True)):
                if new.schedule != old.schedule:
                    self.schedule_from[c] = day
                    self.set_budget[c] = np.nan
                elif new.daily_budget != old.daily_budget:
                    self.set_budget[c] = new.daily_budget
        self.channels = sc.channels
        # a disabled channel drops out of the roll-out: the next one waits for the one before
        self.rollout = [self.index[name] for name in sc.rollout.order
                        if sc.channels[self.index[name]].enabled]
        self.rollout_cfg = sc.rollout
        self.guardrails: list[Guardrail] = sc.guardrails
        self.running_days[day:, len(sc.channels)] = int(sc.word_of_mouth.enabled)

    def _may_launch(self, c: int, day: int, model) -> bool:
        cfg = self.channels[c]
        if day < cfg.launch_day:
            return False
        if c not in self.rollout:
            return True
        k = self.rollout.index(c)
        if k == 0:
            return True
        prev = self.rollout[k - 1]
        if self.launched[prev] < 0 or self.paused[prev]:
            return False
        ran = day - self.launched[prev]
        gained = won(model, self.rollout_cfg.credit, prev, 0, day)  # up to yesterday
        return (ran >= self.rollout_cfg.validation_days
                and gained >= self.rollout_cfg.validation_conversions)

    def running(self, c: int, day: int) -> bool:
        cfg = self.channels[c]
        if not cfg.enabled or self.paused[c] or self.launched[c] < 0:
            return False
        return cfg.end_day is None or day <= cfg.end_day

    def days_since_launch(self, c: int, day: int) -> int:
        return day - self.launched[c] if self.launched[c] >= 0 else -1

    def before_day(self, model, day: int) -> None:
        for c in range(len(self.channels)):
            if self.launched[c] < 0 and self._may_launch(c, day, model):
                self.launched[c] = day
            if not self.running(c, day):
                continue
            self.running_days[day, c] = 1
            t = day - max(self.launched[c], self.schedule_from[c])
            b = scheduled_budget(self.channels[c], t)
            if not math.isnan(self.set_budget[c]):
                b = self.set_budget[c]
            if not math.isnan(self.held[c]):
                b = self.held[c]
            self.budget[day, c] = b * self.multiplier[c]

    def after_day(self, model, day: int) -> None:
        for rule in self.guardrails:
            targets = range(len(self.channels)) if rule.channel == "*" else [self.index[rule.channel]]
            for c in targets:
                if not self.running(c, day) or self.paused[c]:
                    continue
                ran = self.days_since_launch(c, day) + 1
                if ran < rule.validation_days or ran % rule.every_days:
                    continue
                won_total = won(model, rule.credit, c, 0, day + 1)
                if won_total < rule.validation_conversions:
                    continue
                value = self.metric(model, rule, c, day)
                fires = ((rule.above is not None and value > rule.above)
                         or (rule.below is not None and value < rule.below))
                if not fires:
                    continue
                if rule.action == "pause":
                    self.paused[c] = True
                    self.action[day, c] = PAUSED
                elif rule.action == "hold":
                    self.held[c] = self.budget[day, c] / self.multiplier[c]
                    self.action[day, c] = HELD
                else:
                    self.multiplier[c] *= rule.factor
                    self.action[day, c] = SCALED

    @staticmethod
    def metric(model, rule: Guardrail, c: int, day: int) -> float:
        """The guardrail's metric over the trailing window (ltv_cac: realised LTV so far).

        Customers won over the window are the credited ones: with ``lift``, the lift
        measured on the window's conversions alone (none when it is zero or negative), so
        ``cac`` is the window's spend per incremental customer."""
        rec = model.recorder
        lo = max(0, day + 1 - rule.lookback_days)
        gained = won(model, rule.credit, c, lo, day + 1)  # people
        spend = (rec.media[lo : day + 1, c] + rec.fixed[lo : day + 1, c]).sum()
        if rule.metric == "conversion_rate":
            reached = rec.channel("reached")[lo : day + 1, c].sum()
            return gained / reached if reached else 0.0
        cac = spend / gained if gained else math.inf
        if rule.metric == "cac":
            return cac
        customers = rec.channel("conversions")[: day + 1, c].sum()
        margin = model.gross_margin_to_date(c, day)  # the sample's, as customers are
        ltv = margin / customers if customers else 0.0
        return ltv / cac if cac > 0 else math.inf

    def results(self) -> dict:
        return {
            "budget": (("day", "channel"), self.budget),
            "guardrail_action": (("day", "channel"), self.action),
            "running": (("day", "channel"), self.running_days),
        }
