"""Event export (``--events``): the sample's events are the ones the run produced.

With every customer in the sample the export reproduces the run's totals exactly
(orders, revenue, churn and new customers by channel) and its touch paths give back
the kernel's rule-based attribution. With a uniform sample, per-channel shares of new
customers and revenue match the run's within sampling error (hypergeometric z bounds).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from helpers import DEFAULT, own_market

import simulation
from simulation.cli import main
from simulation.kernels.day import ATTR_MODELS
from simulation.state import RING

AGENTS, DAYS = 6000, 80


@pytest.fixture(scope="module")
def full(tmp_path_factory, default_scenario):
    """Every customer exported."""
    path = tmp_path_factory.mktemp("events") / "all.parquet"
    ds = simulation.run(own_market(default_scenario, AGENTS), days=DAYS, seed=5, events_sample=AGENTS,
                        events_path=path)
    return ds, pd.read_parquet(path)


@pytest.fixture(scope="module")
def sampled(tmp_path_factory, default_scenario):
    """A uniform sample of 3,000 of 12,000 customers."""
    path = tmp_path_factory.mktemp("events") / "sample.parquet"
    n = 12_000
    ds = simulation.run(own_market(default_scenario, n), days=100, seed=8, events_sample=3000,
                        events_path=path)
    return ds, pd.read_parquet(path), n, 3000


def test_schema_is_the_contract(full, tmp_path, default_scenario):
    ds, ev = full
    path = tmp_path / "schema.parquet"
    simulation.run(own_market(default_scenario, 500), days=10,
                   seed=1, events_sample=100, events_path=path)
    schema = pq.read_schema(path)
    assert schema.names == ["customer", "day", "event", "channel", "amount"]
    assert [str(t) for t in schema.types] == ["int64", "int32", "string", "string", "double"]
    assert set(ev.channel.unique()) <= {str(c) for c in ds.channel.values}
    assert set(ev.event.unique()) <= {"touch", "purchase", "churn"}
    assert (ev.amount[ev.event != "purchase"] == 0).all()
    assert ev.day.between(0, DAYS - 1).all()


def test_full_export_reproduces_the_run_totals(full):
    ds, ev = full
    channels = [str(c) for c in ds.channel.values]
    buys = ev[ev.event == "purchase"]
    orders = buys.groupby("channel").size().reindex(channels, fill_value=0)
    assert orders.tolist() == ds.orders.sum("day").values.tolist()
    revenue = buys.groupby("channel").amount.sum().reindex(channels, fill_value=0.0)
    assert revenue.values == pytest.approx(ds.revenue.sum("day").values, rel=1e-9)
    churn = ev[ev.event == "churn"].groupby("channel").size().reindex(channels, fill_value=0)
    assert churn.tolist() == ds.churned.sum("day").values.tolist()
    first = buys.groupby("customer").first()
    new = first.groupby("channel").size().reindex(channels, fill_value=0)
    assert new.tolist() == ds.conversions.sum("day").values.tolist()
    by_day = first.groupby("day").size().reindex(range(DAYS), fill_value=0)
    assert by_day.tolist() == ds.conversions.sum("channel").values.tolist()


def journeys(ev: pd.DataFrame) -> list[tuple[list[tuple[str, int]], int]]:
    """Each converting customer's touches before the first purchase, and its day (the
    table keeps each customer's events in the order they happened)."""
    ev = ev.reset_index(drop=True)
    is_buy = ev.event == "purchase"
    buys_so_far = is_buy.astype(int).groupby(ev.customer).cumsum()  # this row included
    pre = ev[(ev.event == "touch") & (buys_so_far == 0)]
    first = ev[is_buy & (buys_so_far == 1)]
    touches = {c: list(zip(g.channel, g.day, strict=True)) for c, g in pre.groupby("customer")}
    return [(touches.get(c, []), int(d)) for c, d in zip(first.customer, first.day, strict=True)]


def test_full_export_touch_paths_give_back_the_kernel_attribution(full):
    """The rule-based credit recomputed from the exported paths (first touch + last 4)
    equals what the kernel credited: the exported touches are the run's."""
    ds, ev = full
    channels = [str(c) for c in ds.channel.values]
    idx = {c: k for k, c in enumerate(channels)}
    half_life = 7.0
    credit = np.zeros((5, len(channels)))
    for touches, day in journeys(ev):
        assert touches, "a conversion always follows a touch"
        kept = touches if len(touches) <= RING else [touches[0], *touches[-RING:]]
        n = len(kept)
        w = np.array([2.0 ** (-(day - d) / half_life) for _, d in kept])
        w /= w.sum()
        credit[0, idx[kept[0][0]]] += 1
        credit[1, idx[kept[-1][0]]] += 1
        for k, (c, _) in enumerate(kept):
            credit[2, idx[c]] += 1 / n
            credit[3, idx[c]] += w[k]
            credit[4, idx[c]] += (1.0 if n == 1 else 0.5 if n == 2
                                  else 0.4 if k in (0, n - 1) else 0.2 / (n - 2))
    kernel = ds.attributed_conversions.sel(attribution_model=list(ATTR_MODELS)).values
    assert credit == pytest.approx(kernel, abs=1e-6)


def test_sample_is_uniform_and_follows_the_seed(sampled, default_scenario, tmp_path):
    _, ev, n, k = sampled
    customers = np.unique(ev.customer)
    # customers who never left 'unaware' have no event: fewer than k may appear
    assert 0.5 * k < len(customers) <= k and customers.min() >= 0 and customers.max() < n
    mean, sd = (n - 1) / 2, n / np.sqrt(12 * len(customers))
    assert abs(customers.mean() - mean) < 5 * sd
    again = tmp_path / "again.parquet"
    simulation.run(own_market(default_scenario, n), days=100, seed=8, events_sample=k, events_path=again)
    assert pd.read_parquet(again).equals(ev)


def hypergeometric_sd(N: int, K: float, n: int) -> float:
    p = K / N
    return float(np.sqrt(n * p * (1 - p) * (N - n) / (N - 1)))


def test_sample_reproduces_conversion_and_revenue_shares(sampled):
    ds, ev, N, n = sampled
    channels = [str(c) for c in ds.channel.values]
    run_new = ds.conversions.sum("day").values.astype(float)
    run_rev = ds.revenue.sum("day").values
    buys = ev[ev.event == "purchase"]
    first = buys.groupby("customer").first()
    new = first.groupby("channel").size().reindex(channels, fill_value=0).values.astype(float)
    assert new.sum() > 200
    # counts: each channel's new customers in the sample ~ hypergeometric(N, K_c, n)
    for c in range(len(channels)):
        expected = n / N * run_new[c]
        assert abs(new[c] - expected) <= 5 * hypergeometric_sd(N, run_new[c], n) + 1, channels[c]
    # shares among new customers
    share_run = run_new / run_new.sum()
    share_sample = new / new.sum()
    m = new.sum()
    fpc = np.sqrt((N - n) / (N - 1))
    sd = np.sqrt(share_run * (1 - share_run) / m) * fpc
    assert np.all(np.abs(share_sample - share_run) <= 5 * sd + 1e-9)
    # revenue: per-customer revenue by acquisition channel, zeros for everyone else in the
    # sample; its sum over the sample estimates n/N of the run's revenue per channel
    per_customer = buys.groupby(["customer", "channel"]).amount.sum().unstack(fill_value=0.0)
    per_customer = per_customer.reindex(columns=channels, fill_value=0.0)
    values = np.zeros((n, len(channels)))
    values[: len(per_customer)] = per_customer.values
    for c, name in enumerate(channels):
        expected = n / N * run_rev[c]
        sd_sum = np.sqrt(n * values[:, c].var(ddof=1) * (N - n) / (N - 1))
        assert abs(values[:, c].sum() - expected) <= 5 * sd_sum + 1e-6, name
    # revenue shares: a ratio estimator, its standard error by the delta method
    rev_share_run = run_rev / run_rev.sum()
    total = values.sum(axis=1)
    rev_share_sample = values.sum(axis=0) / total.sum()
    for c, name in enumerate(channels):
        r = values[:, c] - rev_share_run[c] * total
        sd_share = np.sqrt(n * r.var(ddof=1) * (N - n) / (N - 1)) / total.sum()
        assert abs(rev_share_sample[c] - rev_share_run[c]) <= 5 * sd_share + 1e-9, name


def test_cli_writes_the_event_table(tmp_path, capsys):
    out, events = tmp_path / "r.nc", tmp_path / "e.parquet"
    rc = main(["run", str(DEFAULT), "--agents", "3000", "--days", "30", "--out",
               str(out), "--events", str(events), "--events-sample", "500", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    table = pq.read_table(events)
    assert table.column_names == ["customer", "day", "event", "channel", "amount"]
    assert table.num_rows > 0
    assert len(np.unique(table.column("customer").to_numpy())) <= 500
