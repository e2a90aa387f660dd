"""The app's page (Solara): pick or load a scenario, move its knobs, run it in the
background with a progress bar and a Stop button, and read the funnel, economics,
attribution and weekly dashboard beside the comparison with the previous run.

Every value below is a ``solara.reactive``, which Solara keeps per browser session: two
people on one server each have their own scenario, runs and results. The run itself is
a ``solara.lab.task``: a thread, so the page keeps answering while the model steps.
"""

from __future__ import annotations

import os
from html import escape
from pathlib import Path

import solara
import solara.lab

from simulation.analysis.common import size_text
from simulation.analysis.summary import COLUMNS, definitions, format_figure
from simulation.app import session
from simulation.scenario import Scenario, ScenarioError, load_scenario, scenario_from_toml


def _sources() -> dict[str, Path]:
    """The scenarios on offer: the one given on the command line, then the examples."""
    out = {}
    given = os.environ.get(session.SCENARIO_ENV)
    if given:
        out[Path(given).name] = Path(given)
    examples = session.examples()  # the default example first, as make run and the README
    for name in sorted(examples, key=lambda n: n != "default"):
        out.setdefault(f"{name}.toml", examples[name])
    return out


def _first_edits() -> dict:
    agents = os.environ.get(session.AGENTS_ENV)
    return {"simulation.agents": int(agents)} if agents else {}


loaded: solara.Reactive[dict[str, Scenario]] = solara.reactive({})
"""Scenarios uploaded in this session, by file name."""
choice = solara.reactive(next(iter(_sources()), ""))
edits: solara.Reactive[dict] = solara.reactive(_first_edits())
problem = solara.reactive("")
def _same(a, b) -> bool:
    return a is b  # an Outcome is new when it is another object (xarray's == would align)


outcome: solara.Reactive[session.Outcome | None] = solara.reactive(None, equals=_same)
previous: solara.Reactive[session.Outcome | None] = solara.reactive(None, equals=_same)
day = solara.reactive((0, 0))
runs = solara.reactive(0)
tab = solara.reactive(0)


def _scenario(name: str) -> Scenario:
    if name in loaded.value:
        return loaded.value[name]
    return load_scenario(_sources()[name])


@solara.lab.task
def simulate(scenario: Scenario, label: str, source: str) -> session.Outcome:
    day.value = (0, scenario.simulation.days)

    def progress(done: int, days: int) -> None:
        day.value = (done, days)
        simulate.progress = 100.0 * done / days

    def waiting() -> None:
        day.value = (-1, scenario.simulation.days)

    result = session.simulate(scenario, progress, stop=lambda: not simulate.is_current(),
                              waiting=waiting)
    runs.value += 1  # finished runs only: a stopped one takes no number
    result.source, result.label = source, f"run {runs.value}: {label}"
    previous.value, outcome.value = outcome.value, result
    return result


def _start(base: Scenario) -> None:
    if simulate.pending:  # a second click before the button is disabled
        return
    try:
        scenario = session.edited(base, edits.value, choice.value)
    except ScenarioError as exc:
        problem.value = str(exc)
        return
    problem.value = ""
    simulate(scenario, session.describe(base, edits.value, choice.value), choice.value)


def _upload(file: dict) -> None:
    name = f"{file['name']} (uploaded)"  # never mistaken for, nor replacing, an example
    try:
        scenario = scenario_from_toml(file["data"], name)
    except ScenarioError as exc:
        problem.value = str(exc)
        return
    loaded.value = {**loaded.value, name: scenario}
    problem.value = ""
    _pick(name)


def _pick(name: str) -> None:
    choice.value = name
    edits.value = _first_edits()
    problem.value = ""


@solara.component
def KnobInput(knob: session.Knob, disabled: bool):
    value = edits.value.get(knob.path, knob.value)

    def set_value(v):
        if v is not None:
            edits.value = {**edits.value, knob.path: v}

    if knob.kind == "switch":
        solara.Switch(label=knob.title, value=bool(value), on_value=set_value, disabled=disabled)
    elif knob.kind == "int":
        solara.InputInt(knob.title, value=int(value), on_value=set_value, disabled=disabled)
    else:
        solara.InputFloat(knob.title, value=float(value), on_value=set_value, disabled=disabled)


@solara.component
def Controls(base: Scenario | None):
    names = list(loaded.value) + [n for n in _sources() if n not in loaded.value]
    running = simulate.pending
    solara.Select("scenario", values=names, value=choice.value, on_value=_pick,
                  disabled=running)
    solara.FileDrop(label="or drag a scenario TOML file here", on_file=_upload, lazy=False)
    if base is None:
        return
    if base.description:
        _html("p", f"<i>{escape(base.description)}</i>")
    every = session.knobs(base)
    for group in ("run", "product", "channels", "programmes"):
        group_knobs = [k for k in every if k.group == group]
        if group_knobs:
            _html("h4", escape(group))
            for knob in group_knobs:
                KnobInput(knob, running)
    with solara.Row():
        solara.Button("Run", color="primary", on_click=lambda: _start(base), disabled=running)
        solara.Button("Stop", on_click=simulate.cancel, disabled=not running)
        solara.Button("Reset", on_click=lambda: _pick(choice.value), disabled=running)
    if running:
        done, days = day.value
        solara.ProgressLinear(simulate.progress if simulate.progress else True)
        if done < 0:
            solara.Text("waiting for a run of another session on this server to end")
        else:
            solara.Text(f"day {done} of {days}" if done < days else "drawing the plots")


@solara.component
def Results(result: session.Outcome):
    t = result.totals

    def figure(key: str) -> str:
        return f"<b>{t[key]:,.0f}</b>" + session.plus_minus(session.standard_error(result.ds, key))

    _html("h3", escape(result.label))
    _html("p", f"{figure('customers')} new customers · revenue {figure('revenue')} · "
               f"spend <b>{t['spend']:,.0f}</b> · profit {figure('profit')} · "
               f"{escape(size_text(result.ds.attrs, int(result.ds.attrs['days'])))}, "
               f"seed {result.ds.attrs['seed']} (simulated in {result.seconds:.1f} s)")
    for text in result.warnings:
        solara.Warning(f"{result.source}: {text}")
    for text in result.problems:
        solara.Warning(text)
    with solara.Row():
        stem = Path(result.source.removesuffix(" (uploaded)")).stem or result.scenario.name
        solara.FileDownload(lambda: session.scenario_bytes(result.scenario),
                            filename=f"{stem}_as_run.toml", label="scenario TOML")
        solara.FileDownload(lambda: session.result_bytes(result),
                            filename=f"{stem}.nc", label="result (NetCDF)")
    _html("h4", "Compared with the previous run")
    if previous.value is None:
        _html("p", "No previous run yet: move a knob and Run again to see what it changes.")
    else:
        note = session.noise_note(result, previous.value)
        _html("p", escape(f"previous: {previous.value.label}. {note}"))
    _html("div", _table(session.compare(result, previous.value)), "distsim-compare")
    with solara.lab.Tabs(value=tab):  # the tab stays open across runs
        for kind, label in session.PLOTS:
            with solara.lab.Tab(label):
                if kind in result.plots:
                    solara.Image(result.plots[kind], width="100%")
    _html("h4", "Channels")
    rows = [{h: format_figure(k, r[k]) for h, k in COLUMNS} for r in result.rows]
    _html("div", _table(rows), "distsim-channels")
    _html("p", f"<small>{escape(definitions(result.ds))}</small>")
    if result.findings:
        marks = {"critical": "⚠", "ok": "✓"}
        items = "".join(f"<li>{marks.get(sev, '•')} {escape(text)}</li>"
                        for sev, text in result.findings)
        _html("h4", "Read with care")
        _html("ul", items, "distsim-findings")
    _html("p", "<small>Each customer is credited to the channel of the last touch before the "
               "first order (the Attribution tab shows other rules); what a channel caused "
               "is its hold-out lift: <code>distsim lift</code>.</small>")


def _html(tag: str, inner: str, css_class: str = "") -> None:
    """A plain HTML element (solara.Markdown would fetch a maths renderer from a CDN)."""
    solara.HTML(tag=tag, unsafe_innerHTML=inner, classes=[css_class] if css_class else [])


def _table(rows: list[dict]) -> str:
    """An HTML table of dicts with the same keys: the first column left, figures right."""
    if not rows:
        return ""
    head = list(rows[0])
    cell = 'style="padding:2px 10px;text-align:{}"'

    def line(values, tag):
        return "<tr>" + "".join(f"<{tag} {cell.format('left' if i == 0 else 'right')}>"
                                f"{escape(str(v))}</{tag}>" for i, v in enumerate(values)) + "</tr>"

    body = "".join(line([r[h] for h in head], "td") for r in rows)
    return f"<table><thead>{line(head, 'th')}</thead><tbody>{body}</tbody></table>"


@solara.component
def Page():
    solara.Title("distsim")
    base, unreadable = None, ""
    if choice.value:
        try:
            base = _scenario(choice.value)
        except ScenarioError as exc:
            unreadable = str(exc)
    with solara.Columns([1, 3]):
        with solara.Column():
            with solara.Card("distsim"):
                Controls(base)
        with solara.Column():
            for text in (unreadable, problem.value):
                if text:
                    solara.Error(text)
            if simulate.error:
                solara.Error(f"the run failed: {simulate.exception}")
            if simulate.cancelled:
                solara.Info("run stopped")
            if outcome.value is not None:
                Results(outcome.value)
            elif not simulate.pending:
                solara.Info("Move a budget or switch a programme, then Run.")
