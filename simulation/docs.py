"""The README's reference tables, generated from the code that defines them.

Each table has a name and a renderer in ``TABLES``. In the README a table sits between
two marker comments, and everything outside the markers is hand-written prose::

    <!-- BEGIN generated: scenario.product -->
    ...generated table...
    <!-- END generated: scenario.product -->

``python -m simulation.docs --write`` (``make docs``) rewrites the text between the
markers; ``--check`` exits 1 when the README is stale (``tests/test_docs.py`` does the
same). A new table is one more entry in ``TABLES`` plus its markers in the README.

The scenario tables come from the pydantic schema (``simulation/scenario.py``): one per
table of the TOML file, a row per field with its type, default, bounds (the ``Field``
constraints) and ``description``. A nested table without a section of its own is
flattened into dotted rows (``subscription.period_days``). The customer-state table comes
from ``simulation.state.CUSTOMER_FIELDS``, read through the attributes ``name``,
``dtype``, ``per_customer`` and ``meaning`` only.
"""

from __future__ import annotations

import argparse
import re
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from simulation.scenario import Scenario

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN = "<!-- BEGIN generated: {} -->"
END = "<!-- END generated: {} -->"
MARKER = re.compile(r"<!-- (BEGIN|END) generated: ([\w.\-]+) -->")

SUBTABLES = ("channels.reach", "channels.schedule", "channels.list", "initial.customers")
"""Nested tables documented in a section of their own (with prose of their own) rather
than flattened into their parent's table; dotted paths from the top of the scenario."""


class DocsError(ValueError):
    """The README's markers do not match the generator's tables."""


# -- scenario tables -------------------------------------------------------------------


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model of a field that is a table, an optional table or a list of
    tables, else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (Union, types.UnionType):
        present = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _model_of(present[0]) if len(present) == 1 else None
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        return _model_of(item)
    return None


def _section_model(path: str) -> type[BaseModel]:
    """The model of the table at the dotted ``path`` (list entries by their item model)."""
    model: type[BaseModel] = Scenario
    for part in path.split("."):
        found = _model_of(model.model_fields[part].annotation)
        if found is None:
            raise DocsError(f"scenario field {path!r} is not a table")
        model = found
    return model


def scenario_sections() -> dict[str, type[BaseModel] | None]:
    """Section path -> model, in README order: the top level (``""``), each table of the
    scenario in the schema's order, and the nested tables of ``SUBTABLES`` after their
    parent."""
    sections: dict[str, type[BaseModel] | None] = {"": None}
    for name, info in Scenario.model_fields.items():
        if _model_of(info.annotation) is not None:
            sections[name] = _section_model(name)
            for sub in SUBTABLES:
                if sub.rsplit(".", 1)[0] == name:
                    sections[sub] = _section_model(sub)
    return sections


def _fmt_number(value: float | int) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        if value > 2**32 and (value + 1).bit_count() == 1:
            return f"2^{(value + 1).bit_length() - 1} − 1"
        return f"{value:,}"
    return f"{value:g}".replace("-", "−")


def _bounds(metadata: list) -> list[str]:
    lo = hi = None
    out: list[str] = []
    for m in metadata:
        if isinstance(m, at.Ge):
            lo = ("≥", m.ge)
        elif isinstance(m, at.Gt):
            lo = (">", m.gt)
        elif isinstance(m, at.Le):
            hi = ("≤", m.le)
        elif isinstance(m, at.Lt):
            hi = ("<", m.lt)
        elif isinstance(m, at.MaxLen):
            out.append(f"at most {m.max_length} characters")
        elif getattr(m, "pattern", None):
            out.append(f"`{m.pattern}`")
    if lo and hi and lo[0] == "≥" and hi[0] == "≤":
        out.insert(0, f"{_fmt_number(lo[1])} … {_fmt_number(hi[1])}")
    else:
        out[:0] = [f"{b[0]} {_fmt_number(b[1])}" for b in (lo, hi) if b is not None]
    return out


def _unwrap(annotation: Any) -> tuple[Any, list]:
    """(the bare type, its constraints) of a possibly ``Annotated`` type."""
    if typing.get_origin(annotation) is Annotated:
        base, *extra = typing.get_args(annotation)
        metadata = []
        for item in extra:
            metadata.extend(item.metadata if isinstance(item, FieldInfo) else [item])
        inner, more = _unwrap(base)
        return inner, metadata + more
    return annotation, []


SCALARS = {int: "integer", float: "float", bool: "boolean", str: "string", Any: "value"}


def _type(annotation: Any, constraints: list = ()) -> tuple[str, list[str]]:
    """(the TOML type in words, the bounds of its values) of a type and its constraints."""
    annotation, metadata = _unwrap(annotation)
    metadata = [*constraints, *metadata]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        present = [a for a in args if a is not type(None)]
        if len(present) == 1:
            return _type(present[0], metadata)
        parts = [_type(a, metadata) for a in present]
        return " or ".join(t for t, _ in parts), [b for _, bs in parts for b in bs]
    if origin is Literal:
        choices = [f"`{a}`" for a in args]
        return ", ".join(choices[:-1]) + " or " + choices[-1], []
    if origin is list:
        (item,) = args
        inner, item_meta = _unwrap(item)
        lengths = {type(m): m for m in item_meta if isinstance(m, (at.MinLen, at.MaxLen))}
        if (typing.get_origin(inner) is list and at.MinLen in lengths and at.MaxLen in lengths
                and lengths[at.MinLen].min_length == lengths[at.MaxLen].max_length):
            element, bounds = _type(typing.get_args(inner)[0])
            k = lengths[at.MinLen].min_length
            return f"list of [{', '.join([element] * k)}]", bounds
        element, bounds = _type(item)
        return f"list of {element}", bounds
    if origin is dict:
        element, bounds = _type(args[1])
        return f"table of {element}", bounds + _bounds(metadata)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table", []
    return SCALARS.get(annotation, getattr(annotation, "__name__", str(annotation))), _bounds(metadata)


def _toml_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:_}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_literal(v)}" for k, v in value.items()) + "}"
    return str(value)


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value = info.default_factory() if info.default_factory is not None else info.default
    if value is None or value is PydanticUndefined:
        return "none"
    return f"`{_toml_literal(value)}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _rows(model: type[BaseModel], prefix: str, path: str,
          separate: dict[str, type[BaseModel] | None]) -> list[tuple[str, ...]]:
    rows = []
    for name, info in model.model_fields.items():
        field = f"{prefix}{name}"
        where = f"{path}.{name}" if path else name
        nested = _model_of(info.annotation)
        description = info.description or ""
        if nested is not None and where in separate:
            see = f"the `[{where}]` table below"
            meaning = f"{description}: {see}" if description else see
            rows.append((f"`{field}`", "table", "", "", meaning))
        elif nested is not None and typing.get_origin(info.annotation) is not list:
            if description:
                rows.append((f"`{field}`", "table", "", "", description))
            rows.extend(_rows(nested, f"{field}.", where, separate))
        else:
            kind, bounds = _type(info.annotation, info.metadata)
            rows.append((f"`{field}`", kind, _default(info), "; ".join(bounds), description))
    return rows


def model_table(model: type[BaseModel], path: str = "", separate=(), skip=()) -> str:
    """The markdown table of a pydantic model's fields: field, type, default, bounds and
    meaning (its ``description``). Nested tables are flattened into dotted rows, except
    those whose dotted path (from ``path``) is in ``separate``: they get one row pointing to
    their own table. Fields named in ``skip`` are left out."""
    rows = [row for row in _rows(model, "", path, set(separate)) if row[0].strip("`") not in skip]
    header = ("field", "type", "default", "bounds", "meaning")
    lines = ["| " + " | ".join(header) + " |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def scenario_table(path: str) -> str:
    """The table of the scenario section at ``path`` (``""``: the top level, whose tables
    have sections of their own)."""
    sections = scenario_sections()
    if path:
        return model_table(sections[path], path, separate=sections)
    return model_table(Scenario, separate=sections, skip=sections)


def undescribed_fields() -> list[str]:
    """Dotted names of the scenario fields without a ``description`` (documented nowhere)."""
    missing = []

    def walk(model: type[BaseModel], path: str) -> None:
        for name, info in model.model_fields.items():
            where = f"{path}.{name}" if path else name
            nested = _model_of(info.annotation)
            if nested is not None:
                walk(nested, where)
            elif not info.description:
                missing.append(where)

    walk(Scenario, "")
    return missing


# -- customer state --------------------------------------------------------------------


def customer_state_table() -> str:
    """The customer-state fields: name, dtype, bytes, meaning, and the total per customer."""
    import numpy as np

    from simulation import state

    lines = ["| field | dtype | bytes | meaning |", "|---|---|---:|---|"]
    total = 0
    for f in state.CUSTOMER_FIELDS:
        dtype = np.dtype(f.dtype)
        nbytes = dtype.itemsize * f.per_customer
        total += nbytes
        count = f" ×{f.per_customer}" if f.per_customer != 1 else ""
        lines.append(f"| {f.name} | {dtype.name}{count} | {nbytes} | {_cell(f.meaning)} |")
    lines.append(f"| **total** | | **{total}** | bytes per customer |")
    lines.append("")
    lines.append(f"That is {total} MB per million customers.")
    return "\n".join(lines)


def result_variables_table() -> str:
    """Every variable of the result dataset, from the counter table: name, dimensions,
    unit, how it aggregates over days, meaning."""
    from simulation import counters
    from simulation.kernels import day  # noqa: F401  (registers every mechanism's counters)

    lines = ["| variable | dimensions | unit | over days | meaning |", "|---|---|---|---|---|"]
    for v in counters.variables().values():
        agg = {"none": "", "sum": "sum", "last": "last day", "mean": "mean"}[v.aggregate]
        lines.append(f"| `{v.name}` | {', '.join(v.dims)} | {v.unit} | {agg} | "
                     f"{_cell(v.description)} |")
    return "\n".join(lines)


# -- the registry and the README -------------------------------------------------------


def _scenario_renderer(path: str) -> Callable[[], str]:
    return lambda: scenario_table(path)


OTHER_TABLES: dict[str, Callable[[], str]] = {
    "customer-state": customer_state_table,
    "result-variables": result_variables_table,
}
"""Generated tables other than the scenario's: block name -> renderer. A new table is one
more entry here and its BEGIN/END markers where it belongs in the README."""


def tables() -> dict[str, Callable[[], str]]:
    """Block name -> renderer, for every generated table of the README: a block per
    section of the scenario (``scenario``, ``scenario.product``, ...), then OTHER_TABLES."""
    out: dict[str, Callable[[], str]] = {}
    for path in scenario_sections():
        out[f"scenario.{path}" if path else "scenario"] = _scenario_renderer(path)
    out.update(OTHER_TABLES)
    return out


def render(text: str, renderers: dict[str, Callable[[], str]] | None = None) -> str:
    """``text`` with every generated block rewritten; prose outside the markers is kept.

    Raises DocsError when a marker is unbalanced or unknown, or a table has no block."""
    renderers = tables() if renderers is None else renderers
    out: list[str] = []
    pos, seen, open_name = 0, [], None
    for m in MARKER.finditer(text):
        kind, name = m.groups()
        if kind == "BEGIN":
            if open_name is not None:
                raise DocsError(f"README: block {open_name!r} is not closed before {name!r}")
            if name not in renderers:
                raise DocsError(f"README: no generator for block {name!r} "
                                f"(known: {', '.join(renderers)})")
            if name in seen:
                raise DocsError(f"README: block {name!r} appears twice")
            out.append(text[pos:m.end()])
            out.append("\n" + renderers[name]().rstrip("\n") + "\n")
            open_name, pos = name, None
            seen.append(name)
        else:
            if name != open_name:
                raise DocsError(f"README: END of {name!r} without its BEGIN")
            open_name, pos = None, m.start()
    if open_name is not None:
        raise DocsError(f"README: block {open_name!r} has no END marker")
    missing = [n for n in renderers if n not in seen]
    if missing:
        raise DocsError("README: no block for " + ", ".join(missing) + "; add "
                        + BEGIN.format(missing[0]) + " and " + END.format(missing[0])
                        + " where the table belongs")
    out.append(text[pos:])
    return "".join(out)


def stale_blocks(text: str) -> list[str]:
    """Names of the blocks whose text differs from what the generator produces."""
    def blocks(t: str) -> dict[str, str]:
        return dict(re.findall(r"<!-- BEGIN generated: ([\w.\-]+) -->(.*?)<!-- END generated",
                               t, flags=re.S))

    now, fresh = blocks(text), blocks(render(text))
    return [name for name in fresh if now.get(name) != fresh[name]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulation.docs", description=__doc__.split("\n")[0])
    parser.add_argument("--readme", type=Path, default=README, help="the README to update or check")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="rewrite the generated blocks")
    action.add_argument("--check", action="store_true", help="exit 1 if a block is stale")
    action.add_argument("--show", metavar="NAME", help="print one table (names: see --list)")
    action.add_argument("--list", action="store_true", help="list the tables' names")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(tables()))
        return 0
    if args.show:
        renderers = tables()
        if args.show not in renderers:
            parser.error(f"unknown table {args.show!r}")
        print(renderers[args.show]())
        return 0
    try:
        text = args.readme.read_text(encoding="utf-8")
        fresh = render(text)
        stale = stale_blocks(text)
    except (OSError, DocsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.write:
        if fresh != text:
            args.readme.write_text(fresh, encoding="utf-8")
            print(f"{args.readme}: rewrote {', '.join(stale) or 'the generated blocks'}")
        return 0
    if stale:
        print(f"{args.readme}: stale generated blocks: {', '.join(stale)} (run make docs)",
              file=sys.stderr)
        return 1
    print(f"{args.readme}: generated blocks are current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
