"""Scenario files: loading, validation errors that name the file and the field,
``--set`` overrides and the TOML round trip.

The person who reads a scenario error is editing a TOML file, so every rejection
is checked for the file name and the dotted field path (list entries by name).
"""

from __future__ import annotations

import copy
import math
import tomllib
from pathlib import Path

import pytest
from helpers import DEFAULT, EXAMPLE_SCENARIOS, raw_toml, write_toml

from simulation import Scenario, ScenarioError, load_scenario
from simulation.scenario import (
    STAGES,
    WORD_OF_MOUTH,
    parse_value,
    read_toml,
    scenario_from_dict,
)

DEFAULT_CHANNELS = ["paid_social", "search", "marketplace", "email"]


# -- helpers -------------------------------------------------------------------


def set_raw(data: dict, path: str, value) -> None:
    """Set a dotted path in raw TOML data, list entries by name (independent of the code under test)."""
    node = data
    parts = path.split(".")
    for part in parts[:-1]:
        if isinstance(node, list):
            node = next(item for item in node if item["name"] == part)
        else:
            node = node.setdefault(part, {})
    if isinstance(node, list):
        raise AssertionError("helper cannot replace a list entry")
    node[parts[-1]] = value


def scenario_file(directory: Path, mutations: dict, name: str = "scenario.toml") -> Path:
    data = raw_toml(DEFAULT)
    for path, value in mutations.items():
        set_raw(data, path, value)
    return write_toml(directory / name, data)


def load_error(path: Path, overrides=()) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, overrides)
    return info.value


def assert_names_file_and_field(err: ScenarioError, path: Path, field: str) -> None:
    text = str(err)
    assert str(path) in text, text
    assert err.source == str(path)
    assert err.field == field, text
    assert field in text
    assert "\n" not in text, "an error is one line"


# -- the shipped scenarios -----------------------------------------------------


def test_default_scenario_loads_with_its_contents():
    s = load_scenario(DEFAULT)
    assert isinstance(s, Scenario)
    assert s.name == "default"
    assert [c.name for c in s.channels] == DEFAULT_CHANNELS
    assert s.channel_names == DEFAULT_CHANNELS + [WORD_OF_MOUTH]
    assert [g.name for g in s.segments] == ["enthusiasts", "casual", "bargain_hunters"]
    assert math.isclose(sum(g.share for g in s.segments), 1.0)
    assert s.simulation.agents == 200_000
    assert s.simulation.days == 365
    assert s.simulation.seed == 42
    assert s.product.price == 28.0
    assert s.product.archetype == "niche"
    search = s.channels[1]
    assert search.daily_budget == 150.0
    assert search.reach.model == "cpc"
    assert search.reach.max_daily_reach == 0.05
    assert s.segments[0].affinity == {"paid_social": 1.5, "search": 1.3, "marketplace": 0.7}
    assert s.word_of_mouth.q == 0.05
    assert s.forgetting.considering == 0.02


def test_there_are_example_scenarios():
    assert DEFAULT in EXAMPLE_SCENARIOS


@pytest.mark.parametrize("path", EXAMPLE_SCENARIOS, ids=lambda p: p.name)
def test_every_example_scenario_validates(path):
    s = load_scenario(path)
    assert s.channel_names[-1] == WORD_OF_MOUTH
    assert len(set(s.channel_names)) == len(s.channel_names)
    assert math.isclose(math.fsum(g.share for g in s.segments), 1.0, abs_tol=1e-6)
    known = {c.name for c in s.channels}
    for g in s.segments:
        assert set(g.affinity) <= known
    for c in s.channels:
        assert set(c.reach.audience_stages()) <= set(STAGES)


# -- unknown keys --------------------------------------------------------------


def test_unknown_top_level_key(tmp_path):
    path = scenario_file(tmp_path, {"budgett": 1})
    err = load_error(path)
    assert_names_file_and_field(err, path, "budgett")
    assert "unknown key" in str(err)


@pytest.mark.parametrize(
    "field",
    [
        "channels.search.budgett",
        "channels.paid_social.reach.cpmm",
        "channels.email.effects.awarenes",
        "segments.casual.purchase_rate.shap",
        "segments.bargain_hunters.sharee",
        "product.subscription.period",
        "simulation.agent",
        "word_of_mouth.pp",
    ],
)
def test_unknown_nested_key_names_dotted_path_with_entries_by_name(tmp_path, field):
    path = scenario_file(tmp_path, {field: 1})
    err = load_error(path)
    assert_names_file_and_field(err, path, field)
    assert "unknown key" in str(err)
    assert "[1]" not in str(err) and "[0]" not in str(err), "list entries are named, not indexed"


def test_unknown_key_error_counts_further_problems(tmp_path):
    path = scenario_file(tmp_path, {"channels.search.budgett": 1, "product.pricee": 2})
    err = load_error(path)
    assert "more problem" in str(err)


# -- wrong types ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("simulation.agents", "many"),
        ("simulation.agents", 1.5),
        ("simulation.days", [365]),
        ("product.price", {"amount": 28}),
        ("product.name", 5),
        ("product.archetype", "luxury"),
        ("product.business_model", "rental"),
        ("channels.search.daily_budget", "lots"),
        ("channels.search.kind", "television"),
        ("channels.search.stage", 3),
        ("channels.paid_social.reach.model", "cpa"),
        ("channels.search.effects", 0.5),
        ("segments.casual.affinity", [1, 2]),
        ("word_of_mouth.enabled", [True]),
        ("word_of_mouth.adoption", "unaware"),
    ],
)
def test_wrong_type_names_file_and_field(tmp_path, field, value):
    path = scenario_file(tmp_path, {field: value})
    err = load_error(path)
    assert_names_file_and_field(err, path, field)


def test_segments_must_be_a_list_of_tables(tmp_path):
    data = raw_toml(DEFAULT)
    data["segments"] = {"name": "everyone", "share": 1.0}
    path = write_toml(tmp_path / "scenario.toml", data)
    err = load_error(path)
    assert_names_file_and_field(err, path, "segments")


@pytest.mark.parametrize(("field", "value"), [("simulation.agents", True), ("product.price", True)])
def test_boolean_is_not_a_number(tmp_path, field, value):
    path = scenario_file(tmp_path, {field: value})
    err = load_error(path)
    assert_names_file_and_field(err, path, field)


def test_invalid_channel_name(tmp_path):
    data = raw_toml(DEFAULT)
    data["channels"].append({"name": "my channel", "kind": "email"})
    path = write_toml(tmp_path / "scenario.toml", data)
    err = load_error(path)
    assert str(path) in str(err)
    assert err.field == "channels.my channel.name"


def test_invalid_audience_stage(tmp_path):
    path = scenario_file(tmp_path, {"channels.paid_social.reach.audience": ["aware", "lurking"]})
    err = load_error(path)
    assert str(path) in str(err)
    assert err.field.startswith("channels.paid_social.reach.audience")
    assert "lurking" not in err.field


# -- impossible values ---------------------------------------------------------


@pytest.mark.parametrize("shares", [(0.25, 0.5, 0.2), (0.5, 0.5, 0.5), (0.0, 0.0, 0.0)])
def test_segment_shares_must_sum_to_one(tmp_path, shares):
    data = raw_toml(DEFAULT)
    for seg, share in zip(data["segments"], shares, strict=True):
        seg["share"] = share
    path = write_toml(tmp_path / "scenario.toml", data)
    err = load_error(path)
    assert str(path) in str(err)
    assert "share" in str(err) and "sum to 1" in str(err)


def test_shares_summing_to_one_within_rounding_are_accepted(tmp_path):
    data = raw_toml(DEFAULT)
    data["segments"][0]["share"] = 0.1
    data["segments"][1]["share"] = 0.2
    data["segments"][2]["share"] = 0.7  # 0.1 + 0.2 + 0.7 is not exactly 1.0 in floats
    s = load_scenario(write_toml(tmp_path / "scenario.toml", data))
    assert [g.share for g in s.segments] == [0.1, 0.2, 0.7]


def test_at_least_one_segment(tmp_path):
    data = raw_toml(DEFAULT)
    data["segments"] = []
    err = load_error(write_toml(tmp_path / "scenario.toml", data))
    assert "segment" in str(err)


@pytest.mark.parametrize(
    "field",
    [
        "product.price",
        "product.unit_cost",
        "product.fulfilment_cost",
        "product.return_cost",
        "product.reference_price",
        "channels.search.daily_budget",
        "channels.paid_social.reach.cpm",
        "channels.search.reach.cpc",
        "channels.email.reach.cost_per_contact",
        "channels.marketplace.fee_per_order",
        "channels.marketplace.fixed_daily_cost",
    ],
)
def test_negative_money_is_rejected(tmp_path, field):
    path = scenario_file(tmp_path, {field: -1.0})
    err = load_error(path)
    assert_names_file_and_field(err, path, field)


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
@pytest.mark.parametrize("field", ["channels.search.daily_budget", "product.unit_cost"])
def test_money_must_be_finite(tmp_path, field, value):
    path = scenario_file(tmp_path, {field: value})
    err = load_error(path)
    assert_names_file_and_field(err, path, field)


def test_zero_price_is_rejected(tmp_path):
    path = scenario_file(tmp_path, {"product.price": 0.0})
    assert_names_file_and_field(load_error(path), path, "product.price")


@pytest.mark.parametrize("value", [-0.01, 1.01, 7, float("nan")])
@pytest.mark.parametrize(
    "field",
    [
        "channels.paid_social.effects.awareness",
        "channels.search.effects.decision",
        "channels.email.effects.retention",
        "product.return_rate",
        "forgetting.aware",
        "forgetting.considering",
        "channels.marketplace.commission",
        "channels.search.intent",
        "segments.casual.share",
        "health.decay",
        "product.subscription.churn",
    ],
)
def test_probability_outside_unit_interval_is_rejected(tmp_path, field, value):
    path = scenario_file(tmp_path, {field: value})
    err = load_error(path)
    assert_names_file_and_field(err, path, field)


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_probability_bounds_are_inclusive(tmp_path, value):
    path = scenario_file(tmp_path, {"forgetting.aware": value, "product.return_rate": value})
    s = load_scenario(path)
    assert s.forgetting.aware == value
    assert s.product.return_rate == value


def test_word_of_mouth_p_plus_q_at_most_one(tmp_path):
    path = scenario_file(tmp_path, {"word_of_mouth.p": 0.6, "word_of_mouth.q": 0.6})
    err = load_error(path)
    assert str(path) in str(err)
    assert err.field == "word_of_mouth"
    assert "p + q" in str(err)


@pytest.mark.parametrize(("field", "value"), [("simulation.agents", 0), ("simulation.days", 0),
                                              ("simulation.seed", -1),
                                              ("channels.search.capacity", -1)])
def test_impossible_sizes(tmp_path, field, value):
    path = scenario_file(tmp_path, {field: value})
    assert_names_file_and_field(load_error(path), path, field)


def test_duplicate_channel_names(tmp_path):
    data = raw_toml(DEFAULT)
    data["channels"][1]["name"] = "paid_social"
    path = write_toml(tmp_path / "scenario.toml", data)
    err = load_error(path)
    assert str(path) in str(err)
    assert "paid_social" in str(err)
    assert "unique" in str(err)


def test_duplicate_segment_names(tmp_path):
    data = raw_toml(DEFAULT)
    data["segments"][2]["name"] = "casual"
    err = load_error(write_toml(tmp_path / "scenario.toml", data))
    assert "casual" in str(err) and "unique" in str(err)


def test_affinity_for_unknown_channel(tmp_path):
    path = scenario_file(tmp_path, {"segments.casual.affinity.television": 2.0})
    err = load_error(path)
    text = str(err)
    assert str(path) in text
    assert "television" in text
    assert "casual" in text


def test_negative_affinity(tmp_path):
    path = scenario_file(tmp_path, {"segments.casual.affinity.search": -0.5})
    assert_names_file_and_field(load_error(path), path, "segments.casual.affinity.search")


def test_word_of_mouth_is_a_reserved_channel_name(tmp_path):
    data = raw_toml(DEFAULT)
    data["channels"][3]["name"] = WORD_OF_MOUTH
    path = write_toml(tmp_path / "scenario.toml", data)
    err = load_error(path)
    assert str(path) in str(err)
    assert WORD_OF_MOUTH in str(err)
    assert "reserved" in str(err)


# -- files that are not scenarios ---------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["name = \n", "[simulation\nagents = 1\n", "name = 'a'\nname = 'b'\n", "agents = 1 2\n"],
)
def test_malformed_toml(tmp_path, text):
    path = tmp_path / "broken.toml"
    path.write_text(text, encoding="utf-8")
    err = load_error(path)
    assert str(path) in str(err)
    assert "malformed TOML" in str(err)
    assert "line" in str(err), "the parser's position helps the user find the mistake"
    assert "\n" not in str(err)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.toml"
    err = load_error(path)
    assert str(path) in str(err)
    assert "not found" in str(err)


def test_directory_instead_of_file(tmp_path):
    err = load_error(tmp_path)
    assert str(tmp_path) in str(err)
    assert "directory" in str(err)


def test_binary_file(tmp_path):
    path = tmp_path / "image.toml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    err = load_error(path)
    assert str(path) in str(err)


def test_read_toml_returns_raw_data():
    data = read_toml(DEFAULT)
    assert data["channels"][1]["name"] == "search"


def test_scenario_error_is_a_value_error():
    err = ScenarioError("f.toml", "product.price", "must be positive")
    assert isinstance(err, ValueError)
    assert str(err) == "f.toml: product.price: must be positive"
    assert str(ScenarioError("f.toml", "", "file not found")) == "f.toml: file not found"


# -- --set values ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500", 500),
        ("1_000", 1000),
        ("-3", -3),
        ("0.25", 0.25),
        ("1e3", 1000.0),
        ("true", True),
        ("false", False),
        ('"quoted text"', "quoted text"),
        ("'single'", "single"),
        ("[1, 2, 3]", [1, 2, 3]),
        ('["aware", "considering"]', ["aware", "considering"]),
        ("{ shape = 2.0, mean_days = 30 }", {"shape": 2.0, "mean_days": 30}),
        ("premium", "premium"),
        ("hello world", "hello world"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_parse_value_reads_toml_literals(text, expected):
    value = parse_value(text)
    assert value == expected
    assert type(value) is type(expected)


def test_parse_value_special_floats():
    assert math.isinf(parse_value("inf"))
    assert math.isnan(parse_value("nan"))


@pytest.mark.parametrize(
    "template",
    [
        "__import__('os').system('touch {marker}')",
        "__import__(\"os\").system(\"touch {marker}\")",
        "open('{marker}', 'w').write('x')",
        "exec(\"open('{marker}','w')\")",
    ],
)
def test_parse_value_never_evaluates_code(tmp_path, template):
    marker = tmp_path / "pwned"
    text = template.format(marker=marker)
    value = parse_value(text)
    assert not marker.exists()
    assert value == text, "code stays a plain string"


def test_override_with_code_is_a_string_or_an_error_never_run(tmp_path):
    marker = tmp_path / "pwned"
    code = f"__import__('os').system('touch {marker}')"
    s = load_scenario(DEFAULT, [f"description={code}"])
    assert s.description == code
    with pytest.raises(ScenarioError) as info:
        load_scenario(DEFAULT, [f"simulation.agents={code}"])
    assert info.value.field == "simulation.agents"
    assert not marker.exists()


def test_override_sets_a_channel_field_by_name():
    base = load_scenario(DEFAULT)
    s = load_scenario(DEFAULT, ["channels.search.daily_budget=500"])
    assert s.channels[1].name == "search"
    assert s.channels[1].daily_budget == 500.0
    # nothing else moved
    assert s.channels[0].daily_budget == base.channels[0].daily_budget
    assert s.model_copy(update={"channels": base.channels}) == base


def test_override_does_not_change_the_file():
    before = DEFAULT.read_bytes()
    load_scenario(DEFAULT, ["channels.search.daily_budget=500"])
    assert DEFAULT.read_bytes() == before
    assert load_scenario(DEFAULT).channels[1].daily_budget == 150.0


def test_overrides_apply_in_order_last_wins():
    s = load_scenario(DEFAULT, ["simulation.agents=5000", "simulation.agents=7000"])
    assert s.simulation.agents == 7000


def test_override_simulation_agents():
    s = load_scenario(DEFAULT, ["simulation.agents=1234", "simulation.days=30", "simulation.seed=9"])
    assert (s.simulation.agents, s.simulation.days, s.simulation.seed) == (1234, 30, 9)


def test_override_simulation_agents_impossible_value():
    err = load_error(DEFAULT, ["simulation.agents=0"])
    assert_names_file_and_field(err, DEFAULT, "simulation.agents")


@pytest.mark.parametrize(
    ("override", "check"),
    [
        ("segments.casual.affinity.search=2.5", lambda s: s.segments[1].affinity["search"] == 2.5),
        ("channels.email.effects.retention=0.5", lambda s: s.channels[3].effects.retention == 0.5),
        ('product.positioning="premium"', lambda s: s.product.positioning == "premium"),
        ("product.positioning=premium", lambda s: s.product.positioning == "premium"),
        ("word_of_mouth.enabled=false", lambda s: s.word_of_mouth.enabled is False),
        ('name="my run"', lambda s: s.name == "my run"),
        ("channels.search.capacity=40", lambda s: s.channels[1].capacity == 40),
        ('channels.paid_social.reach.audience=["unaware", "aware"]',
         lambda s: s.channels[0].reach.audience == ["unaware", "aware"]),
        ("channels.search.effects={ decision = 0.5 }",
         lambda s: s.channels[1].effects.decision == 0.5),
        (" channels.search.daily_budget = 42 ", lambda s: s.channels[1].daily_budget == 42.0),
    ],
)
def test_override_kinds_of_values(override, check):
    assert check(load_scenario(DEFAULT, [override]))


def test_override_new_optional_table_is_created(tmp_path):
    data = raw_toml(DEFAULT)
    del data["health"]
    path = write_toml(tmp_path / "scenario.toml", data)
    s = load_scenario(path, ["health.decay=0.01"])
    assert s.health.decay == 0.01


def test_override_unknown_channel_names_it():
    err = load_error(DEFAULT, ["channels.tiktok.daily_budget=500"])
    assert err.field == "channels.tiktok"
    assert "tiktok" in str(err)
    for name in DEFAULT_CHANNELS:
        assert name in str(err), "the error lists the channels there are"


def test_override_unknown_segment_names_it():
    err = load_error(DEFAULT, ["segments.students.share=0.1"])
    assert err.field == "segments.students"
    assert "students" in str(err)


def test_override_unknown_field_is_an_unknown_key():
    err = load_error(DEFAULT, ["channels.search.budgett=500"])
    assert_names_file_and_field(err, DEFAULT, "channels.search.budgett")
    assert "unknown key" in str(err)


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("channels.search.daily_budget=-5", "channels.search.daily_budget"),
        ("channels.search.daily_budget=lots", "channels.search.daily_budget"),
        ("channels.search.daily_budget=inf", "channels.search.daily_budget"),
        ("channels.search.daily_budget=[1]", "channels.search.daily_budget"),
        ("product.return_rate=1.5", "product.return_rate"),
        ("product.return_rate=nan", "product.return_rate"),
        ("simulation.agents=2.5", "simulation.agents"),
        ("product.business_model=rental", "product.business_model"),
    ],
)
def test_bad_value_through_set_names_file_and_field(override, field):
    err = load_error(DEFAULT, [override])
    assert_names_file_and_field(err, DEFAULT, field)


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("channels.search.daily_budget", "path=value"),
        ("channels..daily_budget=1", "empty"),
        ("=5", "empty"),
        ("channels.search=1", "list entry"),
        ("product.price.amount=1", "not a table"),
    ],
)
def test_malformed_override(override, needle):
    with pytest.raises(ScenarioError) as info:
        load_scenario(DEFAULT, [override])
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


# -- round trip ----------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLE_SCENARIOS, ids=lambda p: p.name)
def test_to_toml_round_trips(tmp_path, path):
    s = load_scenario(path)
    text = s.to_toml()
    again = scenario_from_dict(tomllib.loads(text), "<round trip>")
    assert again == s
    written = tmp_path / "resolved.toml"
    written.write_text(text, encoding="utf-8")
    assert load_scenario(written) == s
    assert load_scenario(written).to_toml() == text, "writing is stable"


def test_to_toml_round_trips_default_model_and_overrides(tmp_path):
    assert scenario_from_dict(tomllib.loads(Scenario().to_toml())) == Scenario()
    s = load_scenario(DEFAULT, [
        "channels.search.capacity=25",
        'channels.paid_social.reach.audience=["unaware"]',
        "product.reference_price=30.5",
        "word_of_mouth.enabled=false",
        'description="quotes \\" and\\nnewlines"',
        "simulation.seed=9223372036854775807",
    ])
    again = scenario_from_dict(tomllib.loads(s.to_toml()))
    assert again == s
    assert again.channels[1].capacity == 25
    assert again.channels[0].reach.audience == ["unaware"]
    assert again.description == 'quotes " and\nnewlines'
    assert again.simulation.seed == 2**63 - 1


def test_to_toml_is_a_resolved_scenario_not_an_alias():
    s = load_scenario(DEFAULT)
    data = tomllib.loads(s.to_toml())
    assert data["channels"][0]["name"] == "paid_social"
    assert data["product"]["archetype"] == "niche"
    # defaults are written out, so the text alone says what ran
    assert data["channels"][1]["lead_decay"] == 0.1
    assert "reference_price" in data["product"]
    # a copy: editing the dump leaves the scenario alone
    data["channels"][0]["daily_budget"] = 1.0
    assert s.channels[0].daily_budget == 250.0
    assert copy.deepcopy(s) == s
