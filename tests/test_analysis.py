"""Unit economics, cohort retention, diagnostics and sweep statistics.

Exact checks on a hand-made result whose figures are known, identities on real runs
(CAC x customers = what was paid, realised LTV - CAC = contribution per customer),
payback against a brute-force sum, and each diagnostic rule firing on the run that
should trip it (and not on the one that should not).
"""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
import tomli_w
import xarray as xr
from helpers import combine_runs, own_market
from scipy import stats

import simulation
from simulation.analysis.diagnostics import diagnose
from simulation.analysis.economics import (
    cohort_retention,
    cohort_sizes,
    marginal_cac,
    retention_curves,
    unit_economics,
)
from simulation.analysis.sweep import by_variant, interval, kpis, variant_labels
from simulation.scenario import STAGES, with_overrides

DAYS = 28


def toy(**over) -> xr.Dataset:
    """One paid channel (and word of mouth) over 28 days, with figures set by hand.

    10 customers on day 0, one churns on day 14; 15 orders at price 20: margin per order
    20 - 5 (unit) - 1 (fulfilment) - 2 (10% commission) - 1 (fee) = 11. Media 10 a day.
    """
    ch = ["paid", "word_of_mouth"]
    z = np.zeros((DAYS, 2))
    conversions = z.copy()
    conversions[0, 0] = 10
    churned = z.copy()
    churned[14, 0] = 1
    revenue = z.copy()
    revenue[0, 0] = 200
    revenue[20, 0] = 100
    gm = z.copy()
    gm[0, 0] = 110
    gm[20, 0] = 55
    media = z.copy()
    media[:, 0] = 10.0
    active = np.where(np.arange(DAYS) < 14, 10, 9)
    stage = np.zeros((DAYS, 5))
    stage[:, 3] = active
    stage[:, 0] = 1000 - active
    scenario = {"name": "toy", "product": {"price": 20.0, "return_rate": 0.0, "unit_cost": 5.0,
                                           "fulfilment_cost": 1.0, "return_cost": 0.0},
                "channels": [{"name": "paid", "commission": 0.1, "fee_per_order": 1.0,
                              "discount": 0.0}]}
    dc = ("day", "channel")
    ds = xr.Dataset(
        {"conversions": (dc, conversions), "churned": (dc, churned), "revenue": (dc, revenue),
         "gross_margin": (dc, gm), "media_spend": (dc, media), "fixed_cost": (dc, z.copy()),
         "spend": (dc, media.copy()), "stage_count": (("day", "stage"), stage),
         "unique_reached": (("channel",), np.array([500.0, 0.0])),
         "attributed_conversions": (("attribution_model", "channel"),
                                    np.tile([10.0, 0.0], (6, 1)))},
        coords={"day": np.arange(DAYS), "channel": ch, "stage": list(STAGES),
                "attribution_model": ["first_touch", "last_touch", "linear", "time_decay",
                                      "position_based", "markov"]},
        attrs={"scenario": tomli_w.dumps(scenario), "scenario_name": "toy", "agents": 1000})
    for k, v in over.items():
        ds[k] = v
    return ds


def with_economics(ds: xr.Dataset, **economics) -> xr.Dataset:
    """``ds`` with an ``[economics]`` table in its stored scenario."""
    scenario = tomllib.loads(ds.attrs["scenario"])
    scenario["economics"] = economics
    ds.attrs["scenario"] = tomli_w.dumps(scenario)
    return ds


@pytest.mark.parametrize("discount_rate", [0.0, 0.10])
def test_unit_economics_of_the_hand_made_result(discount_rate):
    ds = with_economics(toy(), horizon_days=365, discount_rate=discount_rate)
    e = unit_economics(ds).sel(channel="paid")
    assert float(e.customers) == 10
    assert float(e.acquisition_fees) == pytest.approx(30.0)  # 10 x (1 + 10% of 20)
    assert float(e.cac) == pytest.approx(280 / 10)  # media and fixed cost only
    assert float(e.cac_loaded) == pytest.approx((280 + 30) / 10)
    assert float(e.ltv) == pytest.approx((165 + 30) / 10)  # first-order fees counted once
    assert float(e.first_order_margin) == pytest.approx(14.0)  # 20 - 5 - 1, before fees
    active_days = 10 * 14 + 9 * 14
    assert float(e.churn_hazard) == pytest.approx(1 / active_days)
    rate = (195 - 140) / active_days
    assert float(e.margin_per_active_day) == pytest.approx(rate)
    q = 1 - 1 / active_days
    kept = q * (1 + discount_rate) ** (-1 / 365)
    ages = np.arange(1, 366)
    assert float(e.ltv_projected) == pytest.approx(14 + rate * (kept ** ages).sum())
    assert float(e.ltv_cac) == pytest.approx(float(e.ltv_projected) / float(e.cac_loaded))
    assert float(e.contribution) == pytest.approx(165 - 280)
    assert float(e.profit) == pytest.approx(165 - 280)  # no fixed cost
    assert float(e.profit_per_customer) == pytest.approx(float(e.ltv - e.cac_loaded))
    assert float(e.monthly_churn) == pytest.approx(1 - q ** 30)
    assert float(e.active_at_end) == pytest.approx(9)
    # payback: the first age whose expected discounted margin covers the loaded CAC
    cumulative = 14 + rate * np.cumsum(kept ** np.arange(1, 5000))
    assert float(e.payback_days) == np.argmax(cumulative >= float(e.cac_loaded)) + 1
    wom = unit_economics(toy()).sel(channel="word_of_mouth")
    assert np.isnan(float(wom.cac)) and np.isnan(float(wom.ltv_projected))


def test_spend_without_customers_is_an_infinite_cac_and_free_customers_a_zero_one():
    """Spent and won no one: inf (sorts last, survives aggregation); a commission-only
    channel: CAC 0 and a loaded CAC of its fees."""
    conversions = toy().conversions.copy()
    conversions[0, 0] = 0
    e = unit_economics(toy(conversions=conversions)).sel(channel="paid")
    assert float(e.cac) == np.inf and float(e.cac_loaded) == np.inf
    media = toy().media_spend * 0
    e = unit_economics(toy(media_spend=media, spend=media)).sel(channel="paid")
    assert float(e.cac) == 0.0
    assert float(e.cac_loaded) == pytest.approx(3.0)  # 1 + 10% of 20 per first order


def test_market_outcomes_are_the_channels_summed():
    ds = toy()
    market = unit_economics(ds, market=True).sel(channel="market")
    channels = unit_economics(ds)
    assert float(market.customers) == float(channels.customers.sum())
    assert float(market.profit) == pytest.approx(float(channels.profit.sum()))
    assert float(market.cac) == pytest.approx(280 / 10)


def test_payback_edge_cases():
    ds = toy()
    ds["media_spend"] = ds.media_spend * 0 + 0.1  # CAC 0.58 below the first-order margin
    ds["spend"] = ds.media_spend
    assert float(unit_economics(ds).payback_days.sel(channel="paid")) == 0
    ds = toy()
    ds["media_spend"] = ds.media_spend * 1000  # never paid back at the observed rates
    ds["spend"] = ds.media_spend
    assert np.isinf(float(unit_economics(ds).payback_days.sel(channel="paid")))


@pytest.mark.parametrize("name", ["default_run", "saas_run"])
def test_unit_economics_identities_on_real_runs(name, request):
    ds = request.getfixturevalue(name)
    e = unit_economics(ds)
    n = ds.conversions.sum("day")
    has = n > 0
    assert (e.cac * n).where(has).values == pytest.approx(e.spend.where(has).values,
                                                          nan_ok=True)
    loaded = e.spend + e.acquisition_fees + ds.acquisition_programme_cost.sum("day")
    assert (e.cac_loaded * n).where(has).values == pytest.approx(loaded.where(has).values,
                                                                 nan_ok=True)
    programmes = ds.programme_cost.sum("day") if "programme_cost" in ds else 0
    profit = ds.gross_margin.sum("day") - programmes - ds.spend.sum("day")
    assert e.profit.values == pytest.approx(profit.values)
    assert e.contribution.values == pytest.approx((profit + ds.fixed_cost.sum("day")).values)
    assert (e.ltv - e.cac_loaded).where(has).values == pytest.approx(
        e.profit_per_customer.where(has).values, nan_ok=True)
    # the dataset stores the same figures
    for name in ("cac", "cac_loaded", "ltv", "ltv_projected", "ltv_cac", "payback_days"):
        assert ds[name].values == pytest.approx(e[name].values, nan_ok=True), name
    # projected LTV is at least the first order; the estimated actives add up exactly
    assert bool((e.ltv_projected >= e.first_order_margin - 1e-9).where(has, True).all())
    assert float(e.active_at_end.sum()) == pytest.approx(
        float(ds.stage_count.isel(day=-1).sel(stage="active")))
    assert ((e.payback_days >= 0) | e.payback_days.isnull()).all()


def test_cohort_retention_of_a_real_run(saas_run):
    ds = saas_run
    ret = cohort_retention(ds)
    assert ret.dims == ("channel", "cohort_week", "weeks_since")
    values = ret.values[np.isfinite(ret.values)]
    assert values.size and values.min() >= 0 and values.max() <= 1
    # every customer is still a customer at acquisition
    sizes = cohort_sizes(ds)
    first = ret.sel(weeks_since=0).where(sizes > 0)
    assert np.allclose(first.values[np.isfinite(first.values)], 1.0)
    # a cell is shown only once every customer of the cohort has reached that age
    days = ds.sizes["day"]
    for c in (0, 5, 11):
        for k in range(ret.sizes["weeks_since"]):
            if 7 * c + 6 + 7 * k > days - 1:
                assert ret.sel(cohort_week=c, weeks_since=k).isnull().all()
    curves = retention_curves(ds)
    assert curves.dims == ("channel", "weeks_since")
    finite = curves.sel(channel="website").dropna("weeks_since").values
    assert len(finite) > 5 and finite[0] == 1.0 and finite[-1] < 1.0


def test_retention_curves_pool_cohorts_by_size():
    ds = toy()
    conv = ds.conversions.copy()
    conv[:] = 0
    conv[0, 0] = 10  # cohort 0: 10 customers
    conv[7, 0] = 30  # cohort 1: 30 customers
    ds["conversions"] = conv
    ret = xr.DataArray(np.full((2, 4, 4), np.nan), dims=("channel", "cohort_week", "weeks_since"),
                       coords={"cohort_week": range(4), "weeks_since": range(4)})
    ret[0, 0, :3] = [1.0, 0.5, 0.4]
    ret[0, 1, :2] = [1.0, 0.9]
    ds["cohort_retention"] = ret
    curve = retention_curves(ds, min_customers=1).sel(channel="paid").values
    # week 1 pools both cohorts by size; week 2 has only cohort 0's value; week 3 none
    # (cohort 1 is too young: 13 + 21 > 27, and cohort 0 has no value there)
    assert curve[0] == pytest.approx(1.0)
    assert curve[1] == pytest.approx((10 * 0.5 + 30 * 0.9) / 40)
    assert curve[2] == pytest.approx(0.4)
    assert np.isnan(curve[3])
    assert np.isnan(retention_curves(ds, min_customers=50).sel(channel="paid").values[1])


def test_retention_without_the_cohort_counter_is_estimated_from_the_hazard():
    ds = toy()
    ret = cohort_retention(ds)
    assert ret.attrs["method"].startswith("estimated")
    h = 1 / (10 * 14 + 9 * 14)
    assert float(ret.sel(channel="paid", cohort_week=0, weeks_since=2)) == pytest.approx(
        (1 - h) ** 14)
    # cohort 1 (days 7-13) is not 3 weeks old everywhere by day 27: 13 + 21 > 27
    assert bool(ret.sel(channel="paid", cohort_week=1, weeks_since=3).isnull())
    assert not bool(ret.sel(channel="paid", cohort_week=0, weeks_since=3).isnull())


# -- diagnostics -----------------------------------------------------------------


def kinds(findings, channel=None):
    return {f.kind for f in findings if channel is None or f.channel == channel}


def test_saas_case_flags_direct_sales(saas_run):
    found = diagnose(saas_run)
    assert "cpa_above_ltv" in kinds(found, "direct_sales")
    assert "capacity_loss" in kinds(found, "direct_sales")
    loss = next(f for f in found if f.kind == "capacity_loss")
    assert loss.figures["leads_lost"] == float(saas_run.leads_lost.sel(channel="direct_sales").sum())
    assert loss.figures["customers_lost"] == pytest.approx(
        loss.figures["leads_lost"] * loss.figures["close_rate"])
    assert not kinds(found, "website") & {"cpa_above_ltv", "low_ltv"}
    for f in found:
        assert f.detail and f.figures and f.severity in ("warning", "critical")


def test_each_rule_fires_where_the_figures_say_so(default_run):
    base = diagnose(default_run)
    ds = default_run.copy(deep=True)
    # search's customers churn five times as often (email, which mails only its list, wins
    # too few at this size to be judged)
    ds["churned"] = ds.churned.where(ds.channel != "search", ds.churned * 5)
    assert "high_churn" in kinds(diagnose(ds), "search")
    assert "high_churn" not in kinds(base, "search")
    # search reaches 30x as many people without converting more of them
    ds = default_run.copy(deep=True)
    ds["unique_reached"] = ds.unique_reached.where(ds.channel != "search",
                                                   ds.unique_reached * 30)
    assert "low_conversion" in kinds(diagnose(ds), "search")
    assert "low_conversion" not in kinds(base, "search")
    # marketplace customers are worth a tenth
    ds = default_run.copy(deep=True)
    ds["gross_margin"] = ds.gross_margin.where(ds.channel != "marketplace",
                                               ds.gross_margin * 0.1)
    assert "low_ltv" in kinds(diagnose(ds), "marketplace")
    assert "low_ltv" not in kinds(base, "marketplace")
    # search spends ten times as much in the last four weeks for the same customers (its
    # marginal CAC starts below its average: the aware pool search converts builds up)
    ds = default_run.copy(deep=True)
    late = (ds.day >= ds.sizes["day"] - 28) & (ds.channel == "search")
    ds["spend"] = ds.spend.where(~late, ds.spend * 10)
    m = marginal_cac(ds).sel(channel="search")
    before = marginal_cac(default_run).sel(channel="search")
    assert float(m.marginal_cac) == pytest.approx(10 * float(before.marginal_cac))
    assert float(m.marginal_cac) > 1.5 * float(m.average_cac)
    assert "diminishing_returns" in kinds(diagnose(ds), "search")
    assert "diminishing_returns" not in kinds(base, "search")


def test_assisting_channel_is_not_called_a_loss(default_run):
    # paid social is nobody's last touch in the default scenario: it is judged on its
    # most generous attributed credit
    found = [f for f in diagnose(default_run) if f.channel == "paid_social"]
    assert found and found[0].kind in ("assist_only", "cpa_above_ltv")
    assert found[0].figures["best_credit"] == pytest.approx(
        float(default_run.attributed_conversions.sel(channel="paid_social").max()))


# -- sweeps ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sweep(default_scenario):
    runs = {}
    for label, budget in (("low", 50.0), ("high", 400.0)):
        s = with_overrides(default_scenario, {"channels.search.daily_budget": budget})
        runs[(label,)] = [simulation.run(own_market(s, 3000), days=40, seed=r) for r in (1, 2, 3)]
    return combine_runs(runs, ("variant",))


def test_sweep_kpis_and_intervals(sweep):
    k = kpis(sweep)
    assert k.profit.dims == ("variant", "replicate")
    one = sweep.isel(variant=1, replicate=2)
    programmes = float(one.programme_cost.sum()) if "programme_cost" in one else 0.0
    assert float(k.profit[1, 2]) == pytest.approx(
        float(one.gross_margin.sum() - one.spend.sum()) - programmes
        - float(one.programme_fixed_cost.sum() if "programme_fixed_cost" in one else 0))
    assert float(k.customers[1, 2]) == float(one.conversions.sum())
    ci = interval(by_variant(k.customers))
    x = k.customers.sel(variant="high").values
    half = stats.t.ppf(0.975, 2) * x.std(ddof=1) / np.sqrt(3)
    assert float(ci["mean"].sel(variant="high")) == pytest.approx(x.mean())
    assert float(ci["high"].sel(variant="high")) == pytest.approx(x.mean() + half)
    assert float(ci["low"].sel(variant="high")) == pytest.approx(x.mean() - half)
    # more search budget buys more search customers in every replicate
    search = sweep.conversions.sel(channel="search").sum("day")
    assert (search.sel(variant="high") > search.sel(variant="low")).all()


def test_variant_labels_of_two_swept_parameters():
    ds = xr.Dataset({"x": (("channels.search.daily_budget", "price"), np.zeros((2, 3)))},
                    coords={"channels.search.daily_budget": [100.0, 200.0],
                            "price": [10.0, 20.0, 30.0]})
    labels = variant_labels(ds)
    assert labels[0] == "search.daily_budget=100, price=10"
    assert len(labels) == 6 and labels[-1] == "search.daily_budget=200, price=30"
    stacked = by_variant(ds.x)
    assert list(stacked.variant.values) == labels


def test_sweep_report_says_how_sure_the_best_is(sweep):
    from simulation.analysis.report import verdict
    from simulation.sweep.combine import p_best

    profit = kpis(sweep).profit.transpose("variant", "replicate").values
    shares = p_best(profit)
    text = verdict(sweep)
    best = ["low", "high"][int(np.argmax(profit.mean(axis=1)))]
    assert f"{best} (" in text and "P(beats runner-up)" in text
    if shares.max() >= 0.9:
        assert text.startswith(f"<p>best by profit (highest): {best}")
        shown = "&gt; 0.99" if shares.max() > 0.99 else f"= {shares.max():.2f}"  # HTML
        assert f"P(best) {shown}" in text
    else:
        assert text.startswith("<p>no clear winner by profit")
    assert "warning" not in text  # named variants: no range to be at the edge of


def test_diagnose_pools_a_sweep(sweep):
    found = diagnose(sweep)
    assert all(f.channel in [str(c) for c in sweep.channel.values] for f in found)
