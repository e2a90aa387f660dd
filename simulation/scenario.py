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
from pathlib import Path
from typing import Annotated, Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

STAGES = ("unaware", "aware", "considering", "active", "churned")
"""Journey stages, in the order of their integer codes in the customer state."""

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
    """Base of every scenario table: unknown keys are errors, values are checked on assignment.

    A table's class is named after the table (``[brand]``: ``Brand``); where that name is
    already a class of the engine (``simulation.components.PostPurchase``,
    ``simulation.reference.model.Attribution``) the table's class ends in ``Config``, so
    that no class name has two homes (``tests/test_structure.py``).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True)


class Simulation(Strict):
    agents: int = Field(100_000, ge=1, le=200_000_000, description="addressable customers")
    days: int = Field(365, ge=1, le=65_000, description="days simulated (day numbers fit uint16)")
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
    archetype: Literal["commodity", "niche", "innovative"] = "commodity"
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
    brand_sensitivity: NonNegFloat = Field(
        0.0, description="how much brand equity lifts conversion and price tolerance"
    )


class Effects(Strict):
    """Stage effects of a channel: the chance that one exposure causes the transition.

    awareness: unaware -> aware; consideration: aware -> considering;
    decision: considering -> active (a first order); retention: churned -> active
    (a win-back) and, for active customers, a lift of their health.
    """

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


class Schedule(Strict):
    """How a channel's daily budget moves over the days since its launch.

    constant: ``daily_budget`` every day. linear: from ``daily_budget`` to ``end_budget``
    over ``ramp_days``. exponential: ``daily_budget * (1 + growth) ** t``. steps:
    ``[[day, budget], ...]`` (days since launch), the last step reached applies.
    The result is capped at ``cap``.
    """

    kind: Literal["constant", "linear", "exponential", "steps"] = "constant"
    end_budget: Money = 0.0
    ramp_days: int = Field(30, ge=1)
    growth: float = Field(0.0, ge=-1.0, le=1.0, description="daily growth of an exponential ramp")
    steps: list[Annotated[list[NonNegFloat], Field(min_length=2, max_length=2)]] = Field(
        default_factory=list, description="[[day since launch, budget], ...]")
    cap: Money | None = None

    @model_validator(mode="after")
    def _steps_sorted(self):
        days = [d for d, _ in self.steps]
        if any(d != int(d) for d in days):
            raise ValueError("step days must be whole days")
        if days != sorted(days):
            raise ValueError("steps must be in increasing day order")
        if self.kind == "steps" and not self.steps:
            raise ValueError("a 'steps' schedule needs at least one [day, budget] step")
        return self


class Novelty(Strict):
    """A new channel's effects start higher and fade: ``1 + boost * 0.5 ** (t / half_life_days)``."""

    boost: NonNegFloat = 0.0
    half_life_days: PositiveFloat = 30.0


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
    discount: Probability = Field(0.0, description="price reduction on orders of customers acquired here")
    personalised: bool = Field(False, description="reaches only customers who consented (reminders, tailored email)")
    launch_day: int = Field(0, ge=0, description="first day the channel runs")
    end_day: int | None = Field(None, ge=0, description="last day the channel runs (None: to the end)")
    schedule: Schedule = Schedule()
    dilution: NonNegFloat = Field(
        0.0, description="audience dilution: effects x 1 / (1 + dilution * exposures per audience member)"
    )
    novelty: Novelty = Novelty()


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


class AttributionConfig(Strict):
    """The ``[attribution]`` table."""

    half_life_days: PositiveFloat = Field(7.0, description="half-life of the time-decay model")


class Rollout(Strict):
    """Staged roll-out: channels in ``order`` launch one at a time, each once the previous
    one has passed its validation window (days and conversions) without a guardrail pausing it."""

    order: list[str] = Field(default_factory=list)
    validation_days: int = Field(30, ge=0)
    validation_conversions: int = Field(0, ge=0)


class Guardrail(Strict):
    """A rule evaluated every ``every_days`` on the trailing ``lookback_days``, once the
    channel has run ``validation_days`` and won ``validation_conversions`` customers.

    It fires when the metric is ``above`` or ``below`` its threshold; then it pauses the
    channel, holds its budget where it is (no further ramp), or scales it by ``factor``.
    """

    channel: str = Field("*", description="channel name, or * for every channel")
    metric: Literal["cac", "conversion_rate", "ltv_cac"]
    above: float | None = None
    below: float | None = None
    action: Literal["pause", "hold", "scale"] = "pause"
    factor: PositiveFloat = Field(1.0, description="budget multiplier of a 'scale' action")
    lookback_days: int = Field(28, ge=1)
    validation_days: int = Field(30, ge=0)
    validation_conversions: int = Field(100, ge=0)
    every_days: int = Field(7, ge=1)

    @model_validator(mode="after")
    def _a_bound(self):
        if self.above is None and self.below is None:
            raise ValueError("a guardrail needs 'above' or 'below' (the threshold that fires it)")
        return self


class Brand(Strict):
    """Brand equity in [0, 1]: premium-signal channels raise it, discount channels erode it."""

    initial_equity: Probability | None = Field(None, description="default by product positioning")
    build_rate: NonNegFloat = Field(0.05, description="equity moved per unit of signal x share reached")
    decay: Probability = Field(0.002, description="daily pull back toward the initial equity")
    discount_erosion: NonNegFloat = Field(2.0, description="signal lost per unit of channel discount")


class Messaging(Strict):
    strategy: Literal["uniform", "channel_specific"] = Field(
        "uniform", description="uniform: one message, each channel's message_alignment applies; "
        "channel_specific: tailored creative (alignment 1) at a daily cost per channel")
    cost_per_channel_per_day: Money = 0.0


class Onboarding(Strict):
    enabled: bool = False
    reach: Probability = Field(1.0, description="share of new customers enrolled")
    days: int = Field(14, ge=1, le=90, description="length of the programme")
    churn_reduction: Probability = Field(0.3, description="churn hazard cut during effect_days")
    effect_days: int = Field(30, ge=1)
    health_boost: Probability = 0.1
    cost_per_customer: Money = 0.0


class Delivery(Strict):
    satisfaction: Probability = Field(0.5, description="0.5 is ordinary; faster delivery is higher")
    cost_per_order: Money = 0.0


class Packaging(Strict):
    quality: Probability = 0.5
    share_rate: Probability = Field(0.0, description="chance an order is shared (unboxing), feeding word of mouth")
    share_reach: NonNegFloat = Field(
        1.0, description="advocate-equivalents one share counts as the next day (a post seen by many)")
    cost_per_order: Money = 0.0


class Returns(Strict):
    flexible: bool = False
    conversion_lift: NonNegFloat = Field(0.1, description="relative lift of decision effects")
    extra_return_rate: Probability = 0.05


class Tracking(Strict):
    enabled: bool = False
    satisfaction_bonus: Probability = 0.1
    cost_per_order: Money = 0.0


class Reminders(Strict):
    """Replenishment reminders timed to each customer's expected run-out (repeat purchases)."""

    enabled: bool = False
    cycle_days: int = Field(70, ge=1, description="days a purchase lasts (e.g. a 20 kg bag)")
    response: Probability = Field(0.3, description="chance a reminder brings the order forward")
    dropout_reduction: Probability = Field(
        0.3, description="drop-out cut for customers who get reminders (consenting)")
    cost_per_reminder: Money = 0.0


class Feedback(Strict):
    enabled: bool = False
    response_rate: Probability = 0.2
    health_boost: Probability = 0.05
    cost_per_survey: Money = 0.0


class Community(Strict):
    """Members churn less and advocate more; the value grows with size: ``m / (m + half_size)``."""

    enabled: bool = False
    join_rate: Probability = Field(0.05, description="chance an order makes the customer join")
    half_size: PositiveFloat = 1000.0
    churn_reduction: Probability = 0.3
    advocacy_boost: NonNegFloat = 1.0
    fixed_daily_cost: Money = 0.0
    cost_per_member_day: Money = 0.0


class PostPurchaseConfig(Strict):
    """The ``[post_purchase]`` table: the programmes the post-purchase component runs."""

    opt_out_share: Probability = Field(0.3, description="customers who do not consent to personalised contact")
    satisfaction_weight: NonNegFloat = Field(0.2, description="health moved per order by satisfaction - 0.5")
    onboarding: Onboarding = Onboarding()
    delivery: Delivery = Delivery()
    packaging: Packaging = Packaging()
    returns: Returns = Returns()
    tracking: Tracking = Tracking()
    reminders: Reminders = Reminders()
    feedback: Feedback = Feedback()
    community: Community = Community()


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
    rollout: Rollout = Rollout()
    guardrails: list[Guardrail] = Field(default_factory=list)
    brand: Brand = Brand()
    messaging: Messaging = Messaging()
    post_purchase: PostPurchaseConfig = PostPurchaseConfig()
    attribution: AttributionConfig = AttributionConfig()

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
        for name in self.rollout.order:
            if name not in names:
                raise ValueError(f"rollout.order names unknown channel '{name}'")
        _unique("rollout.order", self.rollout.order)
        for rule in self.guardrails:
            if rule.channel != "*" and rule.channel not in names:
                raise ValueError(f"guardrail for unknown channel '{rule.channel}'")
        for c in self.channels:
            if c.end_day is not None and c.end_day < c.launch_day:
                raise ValueError(f"channel '{c.name}': end_day before launch_day")
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
            if name:
                out.append(str(name))
            elif out:
                out[-1] += f"[{item}]"
            else:
                out.append(f"[{item}]")
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


def with_overrides(scenario: Scenario, overrides: dict[str, Any], source: str = "<overrides>") -> Scenario:
    """A copy of ``scenario`` with dotted-path overrides (already parsed values) applied."""
    data = copy.deepcopy(scenario.model_dump(mode="json"))
    for key, value in overrides.items():
        apply_override(data, key, value, source)
    return scenario_from_dict(_drop_none(data), source)


def resolve_size(scenario: Scenario, agents: int | None = None, days: int | None = None,
                 seed: int | None = None, source: str = "arguments") -> Scenario:
    """The scenario as it will run: ``[simulation]`` with the given size and seed, validated."""
    over = {f"simulation.{k}": v for k, v in (("agents", agents), ("days", days), ("seed", seed))
            if v is not None}
    return with_overrides(scenario, over, source) if over else scenario


