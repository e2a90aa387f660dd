"""The market on day 0 (``[initial]``): who is aware, considering, a customer or a former
customer when the run starts.

Both backends read the same table of groups and draw each customer's group with one
uniform: the numba kernels from the customer's keyed stream
(:func:`simulation.kernels.day.warm_start`), the reference backend from its own
generator. A group's share is of the whole market, so the sample's composition does
not depend on the scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulation.kernels.day import WS_ACTIVE, WS_AWARE, WS_CONSIDERING, WS_LAPSED
from simulation.scenario import Scenario


@dataclass(frozen=True)
class Groups:
    """The day-0 groups in draw order: ``cum[g, k]`` is the cumulative share of segment g's
    people in the groups up to and including k (beyond the last: unaware); ``kind`` a ``WS_*`` code; ``channel``
    the acquisition channel's index (-1 for prospects); ``tenure`` days over which the
    group was acquired; ``member_share`` the chance an active customer is a member."""

    cum: np.ndarray
    kind: np.ndarray
    channel: np.ndarray
    tenure: np.ndarray
    member_share: float

    @property
    def empty(self) -> bool:
        return self.cum.shape[1] == 0


def groups(scenario: Scenario) -> Groups:
    init = scenario.initial
    size = float(scenario.market.size)
    index = {name: c for c, name in enumerate(scenario.channel_names)}
    segments = [s.name for s in scenario.segments]
    seg_share = np.array([s.share for s in scenario.segments])
    share, kind, channel, tenure = [], [], [], []
    for e in init.customers:
        for what, people in ((WS_ACTIVE, e.active), (WS_LAPSED, e.lapsed)):
            if people > 0:
                if e.segment is None:  # the same share of every segment
                    share.append(np.full(len(segments), people / size))
                else:  # all in one segment: a share of that segment's people
                    g = segments.index(e.segment)
                    row = np.zeros(len(segments))
                    row[g] = people / (size * seg_share[g])
                    share.append(row)
                kind.append(what)
                channel.append(index[e.channel])
                tenure.append(e.tenure_days)
    for what, s in ((WS_AWARE, init.aware), (WS_CONSIDERING, init.considering)):
        if s > 0:
            share.append(np.full(len(segments), s))
            kind.append(what)
            channel.append(-1)
            tenure.append(1)
    active = sum(e.active for e in init.customers)
    cum = (np.cumsum(np.array(share, np.float64), axis=0).T if share
           else np.zeros((len(segments), 0)))
    return Groups(
        cum=np.ascontiguousarray(np.minimum(cum, 1.0)),
        kind=np.array(kind, np.int64),
        channel=np.array(channel, np.int64),
        tenure=np.array(tenure, np.int64),
        member_share=float(init.community_members / active) if active > 0 else 0.0,
    )
