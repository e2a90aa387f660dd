"""The README's reference tables are generated (``simulation/docs.py``) and current.

The scenario tables come from the pydantic schema, the customer-state table from
``simulation.state.CUSTOMER_FIELDS``; ``make docs`` rewrites them between their markers.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import pytest
from helpers import ROOT
from pydantic import BaseModel, Field

from simulation import docs, state

README = ROOT / "README.md"


def test_readme_tables_are_current():
    text = README.read_text(encoding="utf-8")
    try:
        fresh = docs.render(text)
    except docs.DocsError as exc:
        pytest.fail(f"README markers do not match the generated tables: {exc}")
    if fresh != text:
        stale = docs.stale_blocks(text)
        pytest.fail(f"README tables are stale: run make docs (blocks: {', '.join(stale)})")


def test_every_scenario_field_has_a_description():
    """The schema is the only place a field is explained: a field without a description
    would get an empty row in the README."""
    missing = docs.undescribed_fields()
    assert not missing, f"add description= to these fields in simulation/scenario.py: {missing}"


def test_every_table_of_the_scenario_has_a_block():
    names = set(docs.tables())
    assert {"scenario", "scenario.product", "scenario.channels", "scenario.channels.reach",
            "scenario.channels.schedule", "scenario.post_purchase", "customer-state"} <= names
    # every table of the TOML file is documented, flattened into its parent or on its own
    assert {"segments", "channels", "word_of_mouth", "guardrails", "post_purchase",
            "attribution"} <= set(docs.scenario_sections())


# -- how a table is rendered ----------------------------------------------------------------


class Inner(BaseModel):
    rate: Annotated[float, Field(ge=0.0, le=1.0)] = Field(0.25, description="a probability")


class Own(BaseModel):
    size: int = Field(3, ge=1, description="has a table of its own")


class Toy(BaseModel):
    name: str = Field(pattern=r"^[a-z]+$", max_length=8, description="required | piped")
    count: int = Field(100_000, ge=1, le=2**63 - 1, description="big")
    price: float = Field(2.5, gt=0.0, description="positive")
    mode: Literal["a", "b", "c"] = Field("a", description="one of three")
    cap: Annotated[float, Field(ge=0.0)] | None = Field(None, description="unset: no cap")
    steps: list[Annotated[list[Annotated[float, Field(ge=0.0)]],
                          Field(min_length=2, max_length=2)]] = Field(
        default_factory=list, description="pairs")
    weights: dict[str, Annotated[float, Field(ge=0.0)]] = Field(
        default_factory=dict, description="by name")
    on: bool = Field(True, description="switch")
    inner: Inner = Field(Inner(), description="a nested table")
    own: Own = Own()


def test_a_model_table_has_type_default_bounds_and_meaning():
    table = docs.model_table(Toy, "toy", separate={"toy.own"}).splitlines()
    assert table[:2] == ["| field | type | default | bounds | meaning |", "|---|---|---|---|---|"]
    assert table[2:] == [
        r"| `name` | string | required | at most 8 characters; `^[a-z]+$` | required \| piped |",
        "| `count` | integer | `100_000` | 1 … 2^63 − 1 | big |",
        "| `price` | float | `2.5` | > 0 | positive |",
        "| `mode` | `a`, `b` or `c` | `\"a\"` |  | one of three |",
        "| `cap` | float | none | ≥ 0 | unset: no cap |",
        "| `steps` | list of [float, float] | `[]` | ≥ 0 | pairs |",
        "| `weights` | table of float | `{}` | ≥ 0 | by name |",
        "| `on` | boolean | `true` |  | switch |",
        "| `inner` | table |  |  | a nested table |",
        "| `inner.rate` | float | `0.25` | 0 … 1 | a probability |",
        "| `own` | table |  |  | the `[toy.own]` table below |",
    ]


def test_the_customer_state_table_lists_every_field_and_the_total():
    rows = [line for line in docs.customer_state_table().splitlines() if line.startswith("| ")]
    fields = [r.split("|")[1].strip() for r in rows[1:-1]]
    assert fields == [f.name for f in state.CUSTOMER_FIELDS]
    sizes = [int(r.split("|")[3]) for r in rows[1:-1]]
    assert sizes == [np.dtype(f.dtype).itemsize * f.per_customer for f in state.CUSTOMER_FIELDS]
    assert rows[-1].startswith("| **total** |") and f"**{sum(sizes)}**" in rows[-1]


# -- rewriting between the markers ---------------------------------------------------------


TABLES = {"one": lambda: "| a |\n|---|", "two": lambda: "two\n"}
PAGE = """# Title
prose before
<!-- BEGIN generated: one -->
old table
<!-- END generated: one -->
prose between
<!-- BEGIN generated: two -->
<!-- END generated: two -->
prose after
"""


def test_render_rewrites_only_between_the_markers():
    out = docs.render(PAGE, TABLES)
    assert out == PAGE.replace("old table\n", "| a |\n|---|\n").replace(
        "two -->\n<!-- END", "two -->\ntwo\n<!-- END")
    assert docs.render(out, TABLES) == out  # idempotent


@pytest.mark.parametrize("page, words", [
    (PAGE.replace("<!-- END generated: one -->\n", ""), "not closed"),
    (PAGE.replace("one -->", "three -->"), "no generator for block 'three'"),
    (PAGE.replace("<!-- BEGIN generated: two -->\n<!-- END generated: two -->\n", ""),
     "no block for two"),
    (PAGE + "<!-- BEGIN generated: one -->\n<!-- END generated: one -->\n", "appears twice"),
])
def test_mismatched_markers_are_an_error_naming_the_block(page, words):
    with pytest.raises(docs.DocsError, match=words):
        docs.render(page, TABLES)


def test_check_and_write_from_the_command_line(tmp_path, capsys):
    readme = tmp_path / "README.md"
    current = README.read_text(encoding="utf-8")
    stale = current.replace("| `agents` |", "| `agents_old` |", 1)
    assert stale != current
    readme.write_text(stale, encoding="utf-8")
    assert docs.main(["--readme", str(readme), "--check"]) == 1
    assert "scenario.simulation" in capsys.readouterr().err
    assert docs.main(["--readme", str(readme), "--write"]) == 0
    assert readme.read_text(encoding="utf-8") == current
    assert docs.main(["--readme", str(readme), "--check"]) == 0
