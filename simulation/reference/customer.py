"""One customer as an ordinary Mesa agent: the rules of a customer's day in plain Python.

This is the reference backend's half of the docking pair. It is written from the
model's description (``docs/model.md``) and the kernels' documented day order, not
translated from the kernels: where the kernels take shortcuts for speed, this agent
does the obvious thing, and the two must agree in distribution.

- Each reaching channel gets its own draw (the kernels find the first reaching
  channel by conditioning one uniform on "at least one reaches").
- An active customer's purchase cycle is decided day by day: a repeat buyer has an
  order chance each day with probability ``1 - exp(-rate)``, a subscriber renews when a
  period has passed since the last payment, a one-time buyer lapses each day with the
  hazard fixed at the last order (the kernels draw the whole geometric wait at the order
  and schedule the event).
- Health is a float in [0, 1] (the kernels store it in a byte).
- Randomness comes from the model's seeded ``random.Random`` (``self.random``), so a
  seed reproduces a run, but the streams are unrelated to the kernels'.

A customer's day, in order (the order is part of the rules):

1. a lead waiting for a capacity-limited channel may go cold (back to aware); that is
   the day;
2. an active customer's purchase-cycle event, if one falls today (renewal, order chance
   or replenishment reminder, lapse), is the day;
3. otherwise every channel reaching the customer's segment and stage may reach them
   (the list channel only if they are on the firm's list; no channel whose hold-out cell
   they are in); each channel with an opt-in
   chance that reached them may sign them up to the list; each reach is counted, and a
   touch on the journey of a prospect (or of a lapsed customer); the first reaching
   channel whose effect works moves them one stage on; a contact by the list channel may
   make them unsubscribe;
4. an aware or considering customer whom nothing moved may forget.

Leads still waiting at the end of their day join their channel's queue; the model
serves the queues up to capacity after everyone has had their day.
"""

from __future__ import annotations

import math

import mesa

from simulation.counters import MK
from simulation.kernels.day import (  # the result format's layout and codes only
    CH,
    WS_AWARE,
    WS_CONSIDERING,
    WS_LAPSED,
)
from simulation.kernels.events import EV_CHURN, EV_PURCHASE, EV_TOUCH
from simulation.state import ACTIVE, AWARE, CHURNED, CONSIDERING, RING, UNAWARE


class Customer(mesa.Agent):
    """A potential customer: segment, journey stage, purchase history, health."""

    def __init__(self, model: mesa.Model, index: int, segment: int, consented: bool):
        super().__init__(model)
        self.index = index                # position in the population (the event export's id)
        self.segment = segment
        self.consented = consented        # accepts personalised contact
        self.stage = UNAWARE
        self.lead = None                  # capacity-limited channel the prospect waits for
        self.first_touch = None           # (channel, day) of the journey's first touch
        self.recent = None                # the journey's last RING touches, (channel, day)
        self.touches = 0                  # touches on the current journey
        self.journey_last = None          # channel of the latest touch before the first order
        self.reached = 0                  # bit c set once channel c has reached the customer
        self.held = 0                     # bit c set if the customer is in c's hold-out cell
        self.acquired_by = None           # acquisition channel: the last touch at the first order
        self.acquired_day = None
        self.churn_day = None
        self.orders = 0
        self.revenue = 0.0
        self.margin = 0.0
        self.health = 0.0                 # engagement at health_day; declines day by day
        self.health_day = 0
        self.order_chance = 0.0           # repeat buyers: daily chance of an order opportunity
        self.dropout = 0.0                # repeat buyers: chance of dropping out at an opportunity
        self.cycle_start = 0              # day of the last order (or unanswered reminder)
        self.lapse_hazard = 0.0           # one-time buyers: daily lapse hazard since the last order
        self.lapse_protection = (0.0, 0)  # one-time buyers: onboarding's (churn cut, days) then
        self.reminder_planned = False     # repeat buyers: a reminder was planned at the last order
        self.onboarded = False
        self.member = False
        self.existing = False             # a customer before day 0 ([initial]): the base
        self.listed = False               # on the firm's list (the list channel mails it)
        self.logged = False               # in the event-export sample

    def start_as(self, kind: int, channel: int, tenure: int, member_share: float) -> None:
        """Day 0 of a market already running (``[initial]``): a prospect, or a customer
        (active or lapsed) acquired through ``channel`` over the ``tenure`` days before day
        0, whose state follows from the rules as if the last simulated day were day -1."""
        if kind == WS_AWARE or kind == WS_CONSIDERING:
            self.stage = AWARE if kind == WS_AWARE else CONSIDERING
            return
        self.existing = True
        self.acquired_by = channel
        self.orders = 1
        if kind == WS_LAPSED:
            self.stage = CHURNED
            self.churn_day = 0
            return
        rules = self.model.rules
        random = self.random.random
        self.stage = ACTIVE
        age = self.random.randint(1, tenure)
        self.member = member_share > 0.0 and random() < member_share
        self._set_health(0, rules.initial_health)
        if rules.business_model == "repeat":
            shape, scale = rules.purchase_rate[self.segment]
            rate = self.random.gammavariate(shape, scale)
            self.order_chance = 1.0 - math.exp(-rate)
            a, b = rules.dropout[self.segment]
            self.dropout = self.random.betavariate(a, b)
            self.orders = 1 + _poisson(rate * age, random)
        self._restart_cycle(-1)
        if rules.business_model == "subscription":
            # renewals every period (the segment's plan's) since the first order, ``age`` days ago
            period = rules.period[self.segment]
            self.cycle_start = (period - age % period) % period - period

    # -- the day ---------------------------------------------------------------------

    def step(self) -> None:
        """One day of this customer's life, in the order the module docstring gives."""
        model = self.model
        day = model.day
        rules = model.rules
        random = model.random.random  # the model's seeded generator (self.random)
        if self.lead is not None:
            if random() < rules.lead_decay[self.lead]:
                self._lead_goes_cold()
                return
        elif self.stage == ACTIVE and self._purchase_cycle(day):
            return
        stage = self.stage
        moved = self._exposures(day, stage)
        if not moved and (stage == AWARE or stage == CONSIDERING):
            if random() < rules.forget[stage]:
                self._forget()
        if self.lead is not None:
            model.queues[self.lead].append(self)

    def _exposures(self, day: int, stage: int) -> bool:
        """Channels reaching the customer today; returns whether one moved them on."""
        model = self.model
        offers = model.offers[self.segment][stage]
        if not offers:
            return False
        random = model.random.random
        ledger = model.ledger
        rules = model.rules
        moved = False
        reaching = []
        for offer in offers:
            c, reach, _, _, personalised = offer
            if random() >= reach:
                continue
            if personalised and not self.consented:
                continue  # personalised contact reaches only those who consented
            if self.held >> c & 1:
                continue  # a channel never reaches its hold-out cell
            if c == rules.list_channel and not self.listed:
                continue  # the list channel mails only the people on the list
            reaching.append(offer)
        if rules.list_channel >= 0:
            for c, *_ in reaching:  # a visit may sign them up, each channel its own chance
                if rules.opt_in_visit[c] > 0.0 and self.may_join():
                    if random() < rules.opt_in_visit[c]:
                        self.join_list(c)
        for c, _, effect, queues, _ in reaching:
            ledger.add(CH.reached, c)
            self.reached |= 1 << c
            if stage != UNAWARE and stage != ACTIVE:
                self._touch(c, day)
            if moved:
                continue
            if stage == CONSIDERING and queues:
                # a capacity-limited channel (a sales team) queues the prospect; its
                # decision effect applies when the lead is served
                if self.lead is None:
                    self.lead = c
                    ledger.add(CH.leads_new, c)
                continue
            if effect > 0.0 and random() < effect:
                moved = True
                self._move_on(c, stage, day)
        for c, *_ in reaching:
            if c == rules.list_channel and random() < rules.list_unsubscribe:
                self.listed = False  # each contact may cost a subscriber
                ledger.add(CH.list_unsubscribes, c)
        return moved

    # -- the firm's list -------------------------------------------------------------

    def may_join(self) -> bool:
        """Not on the list yet, and (for a personalised list) consented."""
        rules = self.model.rules
        return (rules.list_channel >= 0 and not self.listed
                and (self.consented or not rules.list_needs_consent))

    def join_list(self, c: int) -> None:
        """Opted in; the opt-in is booked to channel c (the one that signed them up)."""
        self.listed = True
        self.model.ledger.add(CH.list_opt_ins, c)

    def _opt_in(self, chance: float, c: int) -> None:
        if chance > 0.0 and self.may_join() and self.random.random() < chance:
            self.join_list(c)

    def _move_on(self, c: int, stage: int, day: int) -> None:
        """What a channel's working exposure does in each stage."""
        model = self.model
        ledger = model.ledger
        if stage == UNAWARE:
            self._touch(c, day)
            ledger.add(CH.moved_aware, c)
            target = model.rules.word_of_mouth_target if c == model.word_of_mouth_index else AWARE
            if target == ACTIVE:
                self._convert(c, day)
            else:
                self.stage = target
                if target == CONSIDERING:
                    ledger.add(CH.moved_considering, c)
                    self._opt_in(model.rules.list_opt_in_consideration, c)
        elif stage == AWARE:
            self.stage = CONSIDERING
            ledger.add(CH.moved_considering, c)
            self._opt_in(model.rules.list_opt_in_consideration, c)
        elif stage == CONSIDERING:
            self._convert(c, day)
        elif stage == CHURNED:
            self._win_back(c, day)
        else:  # a retention touch lifts an active customer's health
            self._set_health(day, self.health_on(day) + model.rules.order_boost)

    def _forget(self) -> None:
        ledger = self.model.ledger
        if self.stage == CONSIDERING:
            self.stage = AWARE
            self.lead = None
            ledger.add_scalar(MK.forgot_considering)
        else:
            self.stage = UNAWARE
            ledger.add_scalar(MK.forgot_aware)

    def _lead_goes_cold(self) -> None:
        self.model.ledger.add(CH.leads_lost, self.lead)
        self.lead = None
        self.stage = AWARE

    def serve_lead(self, day: int) -> None:
        """The channel this lead waits for has time for them today (a demo, a call)."""
        c = self.lead
        self.model.ledger.add(CH.leads_served, c)
        self.lead = None
        self._touch(c, day)
        if self.random.random() < self.model.effects[self.segment][CONSIDERING][c]:
            self._convert(c, day)

    # -- the purchase cycle of an active customer --------------------------------------

    def _purchase_cycle(self, day: int) -> bool:
        """Today's renewal, order chance, reminder or lapse, if any; True if one happened."""
        rules = self.model.rules
        random = self.random.random
        if rules.business_model == "subscription":
            if day - self.cycle_start < rules.period[self.segment]:
                return False
            if random() < rules.subscription_churn[self.segment] * self.churn_multiplier(day):
                self._churn(day)
            else:
                self._reorder(day)
            return True
        if rules.business_model == "repeat":
            if random() < self.order_chance:
                self._order_opportunity(day)
                return True
            if (self.reminder_planned and rules.reminders
                    and day - self.cycle_start == rules.reminder_cycle):
                self._reminder(day)
                return True
            return False
        # one-time buyers do not buy again: they lapse, and a channel may win them back
        hazard = self.lapse_hazard
        cut, protected_days = self.lapse_protection
        if self.onboarded and day - self.acquired_day <= protected_days:
            hazard *= 1.0 - cut
        if random() < min(1.0, hazard):
            self._churn(day)
            return True
        return False

    def _reminder(self, day: int) -> None:
        """A replenishment reminder at the expected run-out: it may bring the order forward."""
        a = self.acquired_by
        ledger = self.model.ledger
        rules = self.model.rules
        ledger.add(CH.reminders, a)
        self.programme_cost(rules.reminder_cost)
        if self.random.random() < rules.reminder_response:
            ledger.add(CH.reminder_orders, a)
            self._order_opportunity(day)
        else:
            self.cycle_start = day  # the next run-out comes a cycle later

    def _order_opportunity(self, day: int) -> None:
        """A repeat buyer's chance to order: drop out first, else order.

        BG/NBD: the drop-out can happen only after a repeat purchase, so the first chance
        after the first order is always an order (tests/validation/test_closed_forms.py)."""
        rules = self.model.rules
        p = self.dropout * self.churn_multiplier(day)
        if rules.reminders and self.consented:
            p *= 1.0 - rules.reminder_dropout_cut
        if self.orders > 1 and self.random.random() < p:
            self._churn(day)
        else:
            self._reorder(day)

    def churn_multiplier(self, day: int) -> float:
        """The segment's churn multiplier, raised by low health, cut by onboarding and community."""
        rules = self.model.rules
        m = rules.churn_multiplier[self.segment]
        if rules.health_sensitivity > 0.0:
            m *= math.exp(rules.health_sensitivity * (0.5 - self.health_on(day)))
        if self.onboarded and self._onboarding_covers(day):
            m *= 1.0 - rules.onboarding_churn_cut
        if self.member:
            m *= 1.0 - self.model.community_churn_cut
        return m

    def _onboarding_covers(self, day: int) -> bool:
        """Onboarding covers an enrolled customer's decisions to leave within its
        ``effect_days`` of the first order, and the first such decision wherever it falls:
        a subscriber's first renewal, a repeat buyer's first order chance that can end in a
        drop-out (the one after the first repeat order). Subscribers and repeat buyers
        decide only at those events, so a programme shorter than the time to the first one
        still shapes it."""
        rules = self.model.rules
        if day - self.acquired_day <= rules.onboarding_days:
            return True
        if rules.business_model == "subscription":
            return self.orders == 1   # no renewal paid yet
        return rules.business_model == "repeat" and self.orders == 2

    def _restart_cycle(self, day: int) -> None:
        """After an order: the purchase cycle starts again today."""
        self.cycle_start = day
        rules = self.model.rules
        # what the order plans is planned under today's rules: a scheduled change later
        # does not move it (the kernels draw the lapse or the reminder at the order)
        self.reminder_planned = rules.reminders and self.consented
        if rules.business_model == "one_time":
            hazard = rules.lapse_rate * rules.churn_multiplier[self.segment]
            if self.member:
                hazard *= 1.0 - self.model.community_churn_cut
            self.lapse_hazard = hazard
            self.lapse_protection = (rules.onboarding_churn_cut, rules.onboarding_days)

    # -- orders --------------------------------------------------------------------------

    def _convert(self, c: int, day: int) -> None:
        """The first order, through channel c (the last touch): a new customer."""
        model = self.model
        rules = model.rules
        ledger = model.ledger
        journey = self._journey()
        self.stage = ACTIVE
        self.acquired_by = c
        self.acquired_day = day
        self.lead = None
        if rules.business_model == "repeat":
            shape, scale = rules.purchase_rate[self.segment]
            rate = self.random.gammavariate(shape, scale)
            self.order_chance = 1.0 - math.exp(-rate)  # at most one order a day
            a, b = rules.dropout[self.segment]
            self.dropout = self.random.betavariate(a, b)
        ledger.add(CH.conversions, c)
        held, h = self.held, 0
        while held:  # a new customer is a conversion of each hold-out cell they are in
            if held & 1:
                ledger.add(CH.holdout_conversions, h)
            held >>= 1
            h += 1
        health = rules.initial_health
        if rules.onboarding_reach > 0.0 and self.random.random() < rules.onboarding_reach:
            self.onboarded = True
            ledger.add(CH.onboarded, c)
            ledger.add(CH.programme_cost, c, rules.onboarding_cost)
            ledger.add(CH.acquisition_programme_cost, c, rules.onboarding_cost)
            health += rules.onboarding_boost
        revenue, margin, fees = self._book_order(c, day)
        ledger.add(CH.first_order_revenue, c, revenue)
        ledger.add(CH.first_order_margin, c, margin)
        ledger.add(CH.acquisition_fees, c, fees)
        model.attribution.credit(journey, day, revenue, ledger)
        model.attribution.journey_end(self.journey_last, converted=True)
        self._reset_journey()
        self._set_health(day, health + self._after_order(c))
        self._restart_cycle(day)

    def _reorder(self, day: int) -> None:
        a = self.acquired_by
        self._book_order(a, day)
        boost = self._after_order(a)
        self._set_health(day, self.health_on(day) + self.model.rules.order_boost + boost)
        self._restart_cycle(day)

    def _win_back(self, c: int, day: int) -> None:
        """A lapsed customer comes back through channel c; the order is the acquirer's."""
        self.stage = ACTIVE
        self.churn_day = None
        self._reset_journey()
        self.model.ledger.add(CH.winbacks, c)
        a = self.acquired_by
        self._book_order(a, day)
        self._set_health(day, self.model.rules.initial_health + self._after_order(a))
        self._restart_cycle(day)

    def _book_order(self, a: int, day: int) -> tuple[float, float, float]:
        """One order at the customer's segment's price (its plan's, else the product's),
        booked to acquisition channel a at that channel's discount.

        Returns its net revenue, gross margin and the channel's commission and fee."""
        rules = self.model.rules
        ledger = self.model.ledger
        price = rules.price[self.segment] * rules.price_multiplier[a]
        returned = rules.return_rate > 0.0 and self.random.random() < rules.return_rate
        revenue = 0.0 if returned else price
        commission = rules.commission[a] * revenue
        fee = rules.fee_per_order[a]
        return_cost = rules.return_cost if returned else 0.0
        ledger.add(CH.orders, a)
        if not self.existing:
            ledger.add_cohort_order(a, self.acquired_day)
        ledger.add(CH.revenue, a, revenue)
        ledger.add(CH.cogs, a, rules.unit_cost)
        ledger.add(CH.fulfilment_cost, a, rules.fulfilment_cost)
        ledger.add(CH.return_cost, a, return_cost)
        ledger.add(CH.commission, a, commission)
        ledger.add(CH.order_fees, a, fee)
        if returned:
            ledger.add(CH.returns, a)
            ledger.add(CH.refunds, a, price)
        margin = revenue - rules.unit_cost - rules.fulfilment_cost - return_cost - commission - fee
        if self.existing:
            ledger.add(CH.base_margin, a, margin)
        self.orders += 1
        self.revenue += revenue
        self.margin += margin
        self._log(day, EV_PURCHASE, a, revenue)
        self._opt_in(rules.list_opt_in_purchase, a)  # the checkout's box
        return revenue, margin, commission + fee

    def _after_order(self, a: int) -> float:
        """Satisfaction, unboxing shares, a feedback survey, joining the community.

        Returns the health the order adds beyond the base (satisfaction and feedback).
        """
        rules = self.model.rules
        ledger = self.model.ledger
        random = self.random.random
        if self.orders == 2:
            ledger.add(CH.repeaters, a)
        boost = rules.satisfaction_boost
        if rules.share_rate > 0.0 and random() < rules.share_rate:
            ledger.add(CH.shares, a)
        if rules.feedback_rate > 0.0:
            self.programme_cost(rules.feedback_cost)
            if random() < rules.feedback_rate:
                ledger.add(CH.feedback, a)
                boost += rules.feedback_boost
        if rules.join_rate > 0.0 and not self.member and random() < rules.join_rate:
            self.member = True
            ledger.add(CH.community_joins, a)
        return boost

    def _churn(self, day: int) -> None:
        a = self.acquired_by
        ledger = self.model.ledger
        self.stage = CHURNED
        self.churn_day = day
        ledger.add(CH.churned, a)
        if self.existing:
            ledger.add(CH.base_churned, a)
        ledger.add(CH.health_at_churn, a, self.health_on(day))
        if self.member:
            self.member = False
            ledger.add(CH.community_leaves, a)
        self._log(day, EV_CHURN, a, 0.0)

    def programme_cost(self, cost: float) -> None:
        """A programme's cost for this customer, booked to their acquisition channel (and
        to its base, for a customer from before day 0)."""
        ledger = self.model.ledger
        ledger.add(CH.programme_cost, self.acquired_by, cost)
        if self.existing:
            ledger.add(CH.base_programme_cost, self.acquired_by, cost)

    # -- health --------------------------------------------------------------------------

    def health_on(self, day: int) -> float:
        h = self.health - self.model.rules.health_decay * (day - self.health_day)
        return h if h > 0.0 else 0.0

    def _set_health(self, day: int, h: float) -> None:
        self.health = min(1.0, max(0.0, h))
        self.health_day = day

    # -- the journey (for attribution) ---------------------------------------------------

    def _touch(self, c: int, day: int) -> None:
        """A touch by channel c. Until the first order it is a step of the acquisition
        journey, counted for Markov attribution as it happens (so however long the
        journey, every step counts); later touches (of a lapsed customer) are not."""
        if self.acquired_by is None:
            self.model.attribution.journey_step(self.journey_last, c)
            self.journey_last = c
        if self.first_touch is None:
            self.first_touch = (c, day)
        if self.recent is None:
            self.recent = []
        self.recent.append((c, day))
        if len(self.recent) > RING:
            del self.recent[0]
        self.touches += 1
        self._log(day, EV_TOUCH, c, 0.0)

    def _journey(self) -> list[tuple[int, int]]:
        """The touches the rule-based models see: the first touch, then the most recent ones.

        Like the kernels, only the last RING touches are remembered besides the first,
        so a long journey loses its middle (Markov attribution counts every step instead,
        in :meth:`_touch`).
        """
        if not self.touches:
            return []
        recent = list(self.recent)
        return [self.first_touch, *recent] if self.touches > RING else recent

    def _reset_journey(self) -> None:
        self.touches = 0
        self.recent = None

    def _log(self, day: int, kind: int, c: int, amount: float) -> None:
        if self.logged:
            self.model.events.append((self.index, day, kind, c, amount))


def _poisson(mean: float, random) -> int:
    """A Poisson count by Knuth's product of uniforms (means here are at most a few hundred;
    the product is kept in logs so it does not underflow)."""
    limit = -mean
    total = 0.0
    k = 0
    while True:
        total += math.log(1.0 - random())
        if total <= limit:
            return k
        k += 1
