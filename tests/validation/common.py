"""What the validation tests share: running a controlled market on either backend.

Sizes differ by backend (the Mesa reference steps about a million customer-days in a
few seconds, the kernels a hundred times that), so each test takes its tolerance from
the size it ran.
"""

from __future__ import annotations

from simulation.model import MarketModel
from simulation.reference import ReferenceMarketModel
from simulation.scenario import scenario_from_dict

MODELS = {"numba": MarketModel, "mesa": ReferenceMarketModel}


def simulate(backend: str, data: dict, agents: int, days: int, seed: int = 1):
    """Run the scenario ``data`` (a dict as in TOML) on ``backend``: (dataset, model)."""
    model = MODELS[backend](scenario_from_dict(data), agents=agents, days=days, seed=seed)
    model.run_model()
    return model.results(), model


def market(**over) -> dict:
    """A one-segment market with no channels and no word of mouth, to build on."""
    data = {
        "name": "controlled",
        "product": {"price": 10.0, "unit_cost": 4.0, "business_model": "one_time",
                    "one_time": {"lapse_rate": 0.0}},
        "segments": [{"name": "all", "share": 1.0, "price_sensitivity": 0.0}],
        "channels": [],
        "word_of_mouth": {"enabled": False},
        "health": {"churn_sensitivity": 0.0},
    }
    data.update(over)
    return data


def everyone_buys_on_day_0(**product) -> dict:
    """Word of mouth with p = 1 and immediate adoption: the whole market buys on day 0."""
    return market(product={"price": 10.0, **product},
                  word_of_mouth={"enabled": True, "p": 1.0, "q": 0.0, "adoption": "active"})
