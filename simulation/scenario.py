"""The scenario: what a user writes in a TOML file, validated before anything runs.

A scenario that loads is one the engine can run: every probability lies in [0, 1],
money is never negative, segment shares sum to 1 and every name a field refers to
exists. Errors name the file and the dotted field path, because the person who
reads them is editing a TOML file, not reading a traceback.

``--set path=value`` overrides use the same dotted names as the TOML, with list
entries (segments, channels) addressed by their ``name``:
``channels.search.daily_budget=500``. Values are parsed as TOML literals, never
evaluated as code.
"""

from __future__ import annotations

import copy
import math
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

STAGES = ("unaware", "aware", "considering", "active", "churned")
"""Journey stages, in the order of their integer codes in the customer state."""

EFFECT_STAGES = ("awareness", "consideration", "decision", "retention")
"""Stage effects of a channel: the transition one exposure can cause.

awareness: unaware -> aware; consideration: aware -> considering;
decision: considering -> active (a first order); retention: churned -> active
(a win-back) and, for active customers, a lift of their health.
"""

ARCHETYPES = ("commodity", "niche", "innovative")
WORD_OF_MOUTH = "word_of_mouth"

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Money = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
PositiveFloat = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=40)]


class ScenarioError(ValueError):
    """A scenario that cannot be run; the message names the file and the field."""

    def __init__(self, source: str, field: str, message: str):
        self.source = source
        self.field = field
        self.message = message
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {message}")


class Strict(BaseModel):
    """Base of every scenario table: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Archetype(StrEnum):
    commodity = "commodity"
    niche = "niche"
    innovative = "innovative"


class Simulation(Strict):
    agents: int = Field(100_000, ge=1, le=200_000_000, description="addressable customers")
    days: int = Field(365, ge=1, le=65_535, description="days simulated (day numbers fit uint16)")
    seed: int = Field(0, ge=0, le=2**63 - 1)


class Subscription(Strict):
    period_days: int = Field(30, ge=1, le=3650, description="days between renewals")
    churn: Probability = Field(0.05, description="probability of cancelling at each renewal")


class OneTime(Strict):
    lapse_rate: Probability = Field(
        0.01, description="daily probability that a one-time buyer stops being an active customer"
    )


class Product(Strict):
    name: str = "product"
    archetype: Archetype = Archetype.commodity
    price: PositiveFloat = 20.0
    reference_price: PositiveFloat | None = Field(
        None, description="price customers compare against; defaults to price"
    )
    unit_cost: Money = 0.0
    fulfilment_cost: Money = 0.0
    return_rate: Probability = 0.0
    return_cost: Money = 0.0
    business_model: Literal["one_time", "repeat", "subscription"] = "repeat"
    positioning: Literal["budget", "mid", "premium"] = "mid"
    subscription: Subscription = Subscription()
    one_time: OneTime = OneTime()

    @property
    def price_ratio(self) -> float:
        return self.price / (self.reference_price or self.price)


class GammaRate(Strict):
    """Heterogeneous purchase rate: lambda ~ Gamma(shape, scale) with mean 1 / mean_days."""

    shape: PositiveFloat = 2.0
    mean_days: PositiveFloat = Field(30.0, description="mean days between orders of an alive customer")


class BetaDropout(Strict):
    """Heterogeneous drop-out after each order: p ~ Beta(a, b) (the BG/NBD story)."""

    a: PositiveFloat = 1.0
    b: PositiveFloat = 9.0


class Segment(Strict):
    name: Name
    share: Probability
    price_sensitivity: NonNegFloat = Field(
        1.0, description="price elasticity of conversion: (price / reference_price) ** -sensitivity"
    )
    affinity: dict[str, NonNegFloat] = Field(
        default_factory=dict, description="relative reach weight per channel name (default 1)"
    )
    purchase_rate: GammaRate = GammaRate()
    dropout: BetaDropout = BetaDropout()
    churn_multiplier: NonNegFloat = 1.0


class Effects(Strict):
    awareness: Probability = 0.0
    consideration: Probability = 0.0
    decision: Probability = 0.0
    retention: Probability = 0.0


class Reach(Strict):
    """How a channel's budget turns into exposures.

    cpm: budget buys impressions, spread over the audience (Poisson reach that saturates).
    cpc: budget buys clicks from the audience that searches; each click is paid.
    fixed: a number of daily visitors (organic, marketplace browsing), no media cost.
    list: each contact in the audience is reached with probability ``frequency`` a day
    (email, a sales follow-up list), each contact paid ``cost_per_contact``.
    """

    model: Literal["cpm", "cpc", "fixed", "list"] = "cpm"
    cpm: Money = 10.0
    cpc: Money = 1.0
    daily_visitors: NonNegFloat = 0.0
    frequency: Probability = 0.0
    cost_per_contact: Money = 0.0
    max_daily_reach: Probability = Field(
        1.0, description="cap on the daily chance of being reached (search volume, list fatigue)"
    )
    audience: list[Literal["unaware", "aware", "considering", "active", "churned"]] | None = Field(
        None, description="stages the channel can reach; default by model"
    )

    def audience_stages(self) -> tuple[str, ...]:
        if self.audience is not None:
            return tuple(self.audience)
        return {
            "cpm": STAGES,
            "cpc": ("aware", "considering", "churned"),
            "fixed": STAGES,
            "list": ("considering", "active", "churned"),
        }[self.model]


class Fit(Strict):
    commodity: Probability = 1.0
    niche: Probability = 1.0
    innovative: Probability = 1.0


class Channel(Strict):
    name: Name
    kind: Literal[
        "paid_social", "search", "display", "marketplace", "retail_partner", "direct_sales",
        "partner", "affiliate", "email", "referral", "organic", "content",
    ]
    stage: Literal["awareness", "consideration", "decision", "retention"] = "awareness"
    effects: Effects = Effects()
    reach: Reach = Reach()
    daily_budget: Money = 0.0
    commission: Probability = Field(0.0, description="share of each order's revenue paid to the channel")
    fee_per_order: Money = 0.0
    fixed_daily_cost: Money = 0.0
    capacity: int | None = Field(
        None, ge=0, description="leads handled a day; excess leads wait and decay (None: unlimited)"
    )
    lead_decay: Probability = Field(0.1, description="daily probability that a waiting lead is lost")
    intent: Probability = Field(1.0, description="share of reached customers in buying mode (scales decision)")
    fit: Fit = Fit()
    message_alignment: Probability = Field(1.0, description="1: a channel-specific message; lower: one message everywhere")
    positioning_signal: float = Field(0.0, ge=-1.0, le=1.0, description="+1 premium, -1 discount")


class WordOfMouth(Strict):
    """Bass-style diffusion: an unaware customer hears of the product with daily
    probability ``p + q * advocates / agents``; hearing moves them to ``adoption``."""

    enabled: bool = True
    p: Probability = 0.0
    q: NonNegFloat = 0.0
    advocacy: Probability = Field(1.0, description="share of active customers who talk about the product")
    adoption: Literal["aware", "considering", "active"] = "aware"

    @model_validator(mode="after")
    def _q_is_a_rate(self):
        if self.p + self.q > 1.0:
            raise ValueError("p + q must be at most 1 (it is the daily hazard when everyone advocates)")
        return self


class Forgetting(Strict):
    aware: Probability = Field(0.0, description="daily probability aware -> unaware")
    considering: Probability = Field(0.0, description="daily probability considering -> aware")


class Health(Strict):
    """Engagement of a customer in [0, 1]: sets the churn hazard, declines without care."""

    initial: Probability = 0.8
    decay: Probability = Field(0.002, description="health lost per day since the last order or touch")
    order_boost: Probability = Field(0.1, description="health regained at each order")
    churn_sensitivity: NonNegFloat = Field(
        0.0, description="churn multiplier is exp(sensitivity * (0.5 - health))"
    )


class Scenario(Strict):
    name: str = "scenario"
    description: str = ""
    simulation: Simulation = Simulation()
    product: Product = Product()
    segments: list[Segment] = Field(default_factory=lambda: [Segment(name="everyone", share=1.0)])
    channels: list[Channel] = Field(default_factory=list)
    word_of_mouth: WordOfMouth = WordOfMouth()
    forgetting: Forgetting = Forgetting()
    health: Health = Health()

    @model_validator(mode="after")
    def _cross_checks(self):
        if not self.segments:
            raise ValueError("at least one segment is needed")
        total = math.fsum(s.share for s in self.segments)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"segment shares must sum to 1 (they sum to {total:g})")
        _unique("segments", [s.name for s in self.segments])
        _unique("channels", [c.name for c in self.channels])
        names = {c.name for c in self.channels}
        if WORD_OF_MOUTH in names:
            raise ValueError(f"'{WORD_OF_MOUTH}' is reserved for the word-of-mouth channel")
        if len(self.channels) > 62:
            raise ValueError("at most 62 channels")
        if len(self.segments) > 255:
            raise ValueError("at most 255 segments")
        for s in self.segments:
            unknown = sorted(set(s.affinity) - names)
            if unknown:
                raise ValueError(
                    f"segment '{s.name}' has an affinity for unknown channel(s) {unknown}"
                )
        return self

    # -- views the engine uses -------------------------------------------------
    @property
    def channel_names(self) -> list[str]:
        """Channels of the result dataset: the scenario's, then word of mouth."""
        return [c.name for c in self.channels] + [WORD_OF_MOUTH]

    def to_toml(self) -> str:
        return tomli_w.dumps(_drop_none(self.model_dump(mode="json")))


def _unique(what: str, names: list[str]) -> None:
    seen = set()
    for n in names:
        if n in seen:
            raise ValueError(f"{what} names must be unique ('{n}' appears twice)")
        seen.add(n)


def _drop_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_drop_none(v) for v in obj]
    return obj


# -- loading and overrides -----------------------------------------------------


def parse_value(text: str) -> Any:
    """A ``--set`` value as a TOML literal; a bare word that is not one stays a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(data: dict, path: str, value: Any, source: str = "--set") -> None:
    """Set ``path`` (dotted, list entries by name) in the raw scenario ``data``."""
    parts = path.split(".")
    if not path or any(p == "" for p in parts):
        raise ScenarioError(source, path, "empty path component")
    node: Any = data
    walked: list[str] = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        walked.append(part)
        if isinstance(node, list):
            match = [item for item in node if isinstance(item, dict) and item.get("name") == part]
            if not match:
                names = [item.get("name") for item in node if isinstance(item, dict)]
                raise ScenarioError(
                    source, ".".join(walked), f"no entry named '{part}' (have {names})"
                )
            if last:
                raise ScenarioError(source, path, "cannot replace a whole list entry; set one of its fields")
            node = match[0]
            continue
        if not isinstance(node, dict):
            raise ScenarioError(source, ".".join(walked[:-1]), "is not a table")
        if last:
            node[part] = value
        else:
            if part not in node:
                node[part] = {}
            node = node[part]


def _format_loc(loc: tuple, data: dict) -> str:
    """Turn pydantic's loc (with list indices) into the dotted names a user writes."""
    out: list[str] = []
    node: Any = data
    for item in loc:
        if isinstance(item, int) and isinstance(node, list):
            entry = node[item] if item < len(node) else None
            name = entry.get("name") if isinstance(entry, dict) else None
            out.append(str(name) if name else f"[{item}]")
            node = entry
        else:
            out.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(out)


def scenario_from_dict(data: dict, source: str = "<scenario>") -> Scenario:
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = _format_loc(tuple(err["loc"]), data)
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        extra = f" (and {len(exc.errors()) - 1} more problem(s))" if len(exc.errors()) > 1 else ""
        raise ScenarioError(source, field, msg + extra) from None


def read_toml(path: str | Path) -> dict:
    p = Path(path)
    if not p.exists():
        raise ScenarioError(str(p), "", "file not found")
    if p.is_dir():
        raise ScenarioError(str(p), "", "is a directory, not a TOML file")
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(str(p), "", f"malformed TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ScenarioError(str(p), "", "not a UTF-8 text file") from None


def load_scenario(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Scenario:
    """Read, override and validate a scenario file.

    ``overrides`` are ``path=value`` strings, as given to ``--set``.
    """
    data = read_toml(path)
    for item in overrides:
        if "=" not in item:
            raise ScenarioError("--set", item, "expected path=value")
        key, _, text = item.partition("=")
        apply_override(data, key.strip(), parse_value(text.strip()))
    return scenario_from_dict(data, str(path))


def with_overrides(scenario: Scenario, overrides: dict[str, Any]) -> Scenario:
    """A copy of ``scenario`` with dotted-path overrides (already parsed values) applied."""
    data = copy.deepcopy(scenario.model_dump(mode="json"))
    for key, value in overrides.items():
        apply_override(data, key, value)
    return scenario_from_dict(_drop_none_top(data), "<overrides>")


def _drop_none_top(data: dict) -> dict:
    return _drop_none(data)
