"""The ``distsim`` command line. Thin: parse, call the Python API, print.

Bad input (unknown key, wrong type, impossible value, missing file, malformed
TOML) gets one clear line naming the file and the field, exit status 2, no
traceback, and no output file written.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from simulation import arguments
from simulation.outputs import STOP_ASKED
from simulation.progress import ProgressBar

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class BadInput(Exception):
    """A problem with what the user gave us (as opposed to a bug)."""


def _console() -> Console:
    # piped output (CI logs, files) gets a width that fits the summary table
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def _err(message: str) -> int:
    Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {escape(message)}",
                                                soft_wrap=True)
    return EXIT_BAD_INPUT


def _warn(message: str) -> None:
    Console(stderr=True, highlight=False).print(f"[bold yellow]warning:[/] {escape(message)}",
                                                soft_wrap=True)


def _port(text: str) -> int:
    value = arguments.positive(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 1 to 65535, got {text!r}")
    return value


def cmd_validate(args) -> int:
    from simulation.scenario import load_scenario, scenario_warnings

    scenario = load_scenario(args.scenario, args.set)
    for warning in scenario_warnings(scenario):
        _warn(f"{args.scenario}: {warning}")
    _console().print(f"{args.scenario}: ok ({scenario.name}: {len(scenario.segments)} segment(s), "
                     f"{len(scenario.channels)} channel(s), {scenario.simulation.agents:,} customers "
                     f"x {scenario.simulation.days} days)", markup=False)
    return 0


def cmd_validate_model(args) -> int:
    """Run tests/validation with pytest: 0 if every check passes, 1 otherwise."""
    import simulation

    suite = Path(simulation.__file__).resolve().parents[1] / "tests" / "validation"
    if not suite.is_dir():
        raise BadInput(f"{suite}: validation suite not found (it comes with the source tree)")
    try:
        import pytest
    except ImportError:
        raise BadInput("validate-model needs pytest and hypothesis: pip install 'distsim[dev]'") from None
    options = ["-q", "-p", "no:cacheprovider", *(["-k", args.k] if args.k else [])]
    return 0 if pytest.main([str(suite), *options]) == 0 else 1


def _scenario(args):
    """The scenario file with its ``--set`` overrides, as typed, and as it will run (at
    ``--agents``, ``--days`` and ``--seed``)."""
    from simulation.scenario import ScenarioError, load_scenario, resolve_size

    scenario = load_scenario(args.scenario, args.set)
    try:
        return scenario, resolve_size(scenario, args.agents, args.days, args.seed,
                                      source="command line")
    except ScenarioError as exc:  # name the flag the user typed, not the schema field
        flag = exc.field.replace("simulation.", "--")
        raise BadInput(f"{flag}: {exc.message}") from None


def cmd_run(args) -> int:
    import simulation
    from simulation import memory
    from simulation.analysis.summary import summary_table
    from simulation.io import netcdf_bytes
    from simulation.outputs import OutputFiles
    from simulation.scenario import scenario_warnings

    scenario, resolved = _scenario(args)
    if args.scheduler is not None and args.backend != "numba":
        raise BadInput(f"--backend {args.backend}: steps every customer in this process; "
                       "--scheduler shards the numba backend only")
    if args.shards is not None:
        if args.scheduler is None:
            raise BadInput("--shards: needs --scheduler ADDRESS (the cluster that holds the shards)")
        from simulation.sharded import check_shards

        check_shards(resolved, args.shards)
    out = Path("results") / f"{Path(args.scenario).stem}.nc" if args.out is None else args.out
    console = _console()
    with OutputFiles(inputs=[args.scenario]) as outputs:
        out = outputs.add("--out", out, memory.result_bytes(resolved))
        if args.plot is not None:
            outputs.add("--plot", args.plot, PLOT_BYTES)
        if args.events is not None:
            outputs.add("--events", args.events, memory.events_bytes(resolved, args.events_sample))
        for warning in scenario_warnings(resolved):
            _warn(f"{args.scenario}: {warning}")
        progress = ProgressBar(console, f"simulating {scenario.name}", "days",
                               enabled=not args.quiet, delay=1.0)
        try:
            ds = simulation.run(resolved, backend=args.backend, threads=args.threads, progress=progress,
                                events_sample=args.events_sample,
                                events_path=outputs.path("--events") if args.events else None,
                                scheduler=args.scheduler, shards=args.shards)
        finally:
            progress.close()
        outputs.write("--out", netcdf_bytes(ds))
        if args.plot is not None:
            from simulation.analysis.plots import plot_bytes

            outputs.write("--plot", plot_bytes(ds, "funnel"))
        outputs.commit()
    if not args.quiet:
        console.print(summary_table(ds))
        from simulation.analysis.diagnostics import console_lines, diagnose

        for line in console_lines(diagnose(ds)):
            console.print(line, soft_wrap=True)
        extra = (f", funnel plot to {args.plot}" if args.plot else "") + (
            f", events to {args.events}" if args.events else "")
        console.print(f"result written to {out}{extra}", markup=False)
    return 0


PLOT_BYTES = 1 << 20
"""Room a plot needs on disk (a PNG of a few hundred kB)."""
REPORT_BYTES = 8 << 20
"""Room a report needs on disk (HTML with its plots inlined)."""


def _load_result(result: str):
    """A run's result file, or a sweep (its DIR or DIR/combined.nc): (path, dataset)."""
    path = Path(result)
    try:
        if path.is_dir() and (path / "combined.nc").is_file():
            path = path / "combined.nc"
        elif path.is_dir():
            raise BadInput(f"{path}: a directory without combined.nc (not a finished sweep)")
        path.stat()
    except OSError as exc:  # a symlink loop, a name too long, a missing file
        reason = "file not found" if isinstance(exc, FileNotFoundError) else exc.strerror
        raise BadInput(f"{path}: {reason}") from None
    if not path.is_file():
        raise BadInput(f"{path}: not a regular file")
    ds = _read(path, str(path), "result file")
    if ds.attrs.get("kind") == "lift":
        raise BadInput(f"{path}: a lift result; read it beside its run with distsim report "
                       f"RUN.nc --lift {path}")
    if "stage_count" not in ds:
        raise BadInput(f"{path}: not a distsim result (no stage_count variable)")
    return path, ds


def _read(path: Path, where: str, kind: str):
    """The NetCDF file at ``path`` (named ``where`` in messages) read whole, or one line
    saying it is missing or not a readable ``kind``."""
    import warnings

    from simulation.io import read_netcdf

    try:
        with warnings.catch_warnings():  # xarray warns about foreign HDF5 before failing
            warnings.simplefilter("ignore")
            return read_netcdf(path)
    except FileNotFoundError:
        raise BadInput(f"{where}: file not found") from None
    except Exception as exc:  # h5py/xarray raise many kinds on a file that is not a result
        raise BadInput(f"{where}: not a readable {kind} ({type(exc).__name__})") from None


def _load_lift(text: str, ds):
    """A ``distsim lift`` result of the scenario ``ds`` was run from."""
    path = Path(text)
    lift = _read(path, f"--lift {path}", "lift result")
    if lift.attrs.get("kind") != "lift":
        raise BadInput(f"--lift {path}: not a distsim lift result")
    if "replicate" in ds.dims or "variant" in ds.dims:
        raise BadInput("--lift: goes with a run's result, not a sweep")
    if lift.attrs.get("scenario_name") != ds.attrs.get("scenario_name"):
        raise BadInput(f"--lift {path}: a lift of '{lift.attrs.get('scenario_name')}', not of "
                       f"'{ds.attrs.get('scenario_name')}'")
    for key in ("agents", "days"):
        if int(lift.attrs.get(key, -1)) != int(ds.attrs.get(key, -2)):
            raise BadInput(f"--lift {path}: measured at {key} = {lift.attrs.get(key)}, the run "
                           f"has {ds.attrs.get(key)}; run the lift at the run's size")
    if _unseeded(lift.attrs.get("scenario", "")) != _unseeded(ds.attrs.get("scenario", "")):
        raise BadInput(f"--lift {path}: a lift of other scenario settings than the run's "
                       "(only the seed may differ: the lift draws its own per replicate)")
    return lift


def _unseeded(text: str) -> dict:
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}
    data.get("simulation", {}).pop("seed", None)
    return data


def _output_beside(path: Path, out: str | None, suffix: str) -> Path:
    """``--out``, or a file beside the result named after it (a sweep: after its folder)."""
    if out is None:
        stem = path.parent.name if path.name == "combined.nc" else path.stem
        out = path.with_name(f"{stem}_{suffix}")
    return out


def cmd_plot(args) -> int:
    from simulation.analysis.plots import PlotError, plot_bytes
    from simulation.outputs import OutputFiles

    path, ds = _load_result(args.result)
    with OutputFiles(inputs=[path]) as outputs:
        out = outputs.add("--out", _output_beside(path, args.out, f"{args.kind}.png"),
                          PLOT_BYTES)
        try:
            outputs.write("--out", plot_bytes(ds, args.kind, metric=args.metric))
        except PlotError as exc:
            raise BadInput(f"{path}: {exc}") from None
        outputs.commit()
    _console().print(f"{args.kind} plot written to {out}", markup=False)
    return 0


def cmd_report(args) -> int:
    from simulation.analysis.plots import PlotError
    from simulation.analysis.report import render
    from simulation.outputs import OutputFiles

    calibration = _calibration(args.result)
    if calibration is not None:
        return _report_calibration(args, *calibration)
    path, ds = _load_result(args.result)
    lift = None
    if args.lift is not None:
        lift = _load_lift(args.lift, ds)
    with OutputFiles(inputs=[path, args.lift]) as outputs:
        out = outputs.add("--out", _output_beside(path, args.out, "report.html"), REPORT_BYTES)
        try:
            outputs.write("--out", render(ds, source=str(path), lift=lift))
        except PlotError as exc:
            raise BadInput(f"{path}: {exc}") from None
        outputs.commit()
    _console().print(f"report written to {out}", markup=False)
    return 0


def _calibration(result: str):
    """A calibration's DIR or its posterior.nc: (path, posterior), else None."""
    path = Path(result)
    if path.is_dir() and (path / "posterior.nc").is_file():
        path = path / "posterior.nc"
    elif not (path.is_file() and path.name == "posterior.nc"):
        return None
    post = _read(path, str(path), "calibration posterior")
    if post.attrs.get("kind") != "calibration":
        raise BadInput(f"{path}: not a distsim calibration posterior")
    return path, post


def _report_calibration(args, path: Path, post) -> int:
    from simulation.calibration.report import render_calibration
    from simulation.outputs import OutputFiles

    if args.lift is not None:
        raise BadInput("--lift: goes with a run's result, not a calibration")
    default = path.parent / "report.html"
    with OutputFiles(inputs=[path]) as outputs:
        out = outputs.add("--out", args.out or default, REPORT_BYTES)
        outputs.write("--out", render_calibration(post, source=str(path)))
        outputs.commit()
    _console().print(f"report written to {out}", markup=False)
    return 0


def cmd_lift(args) -> int:
    from simulation import lift

    scenario, resolved = _scenario(args)
    plan = lift.plan(resolved, _names(args.channels, "--channels"),
                     _names(args.programmes, "--programmes"), args.from_day, args.replicates,
                     source=args.scenario)  # validated before anything is written or run
    out = Path("results") / f"{Path(args.scenario).stem}_lift.nc" if args.out is None else args.out
    console = _console()
    from simulation.outputs import OutputFiles

    with OutputFiles(inputs=[args.scenario]) as outputs:
        out = outputs.add("--out", out, LIFT_BYTES)
        if args.plot is not None:
            outputs.add("--plot", args.plot, PLOT_BYTES)
        from simulation.sweep.command import start_local_workers

        start_local_workers(args.jobs, args.threads, args.scheduler)
        from simulation.analysis.incrementality import lift_png, lift_table
        from simulation.io import netcdf_bytes

        runs = (len(plan.hold_outs) + 1) * args.replicates
        progress = ProgressBar(console, f"lift of {scenario.name}: {runs} runs", "runs",
                               enabled=not args.quiet)
        try:
            ds, base = lift.measure(plan, jobs=args.jobs, scheduler=args.scheduler,
                                    threads=args.threads, progress=progress,
                                    workdir=out.parent)
        finally:
            progress.close()
        outputs.write("--out", netcdf_bytes(ds))
        if args.plot is not None:
            outputs.write("--plot", lift_png(ds))
        outputs.commit()
    if not args.quiet:
        from simulation.analysis.diagnostics import console_lines, diagnose

        console.print(lift_table(ds))
        for line in console_lines(diagnose(base, ds)):
            console.print(line, soft_wrap=True)
        extra = f", plot to {args.plot}" if args.plot else ""
        console.print(f"lift written to {out}{extra}", markup=False)
    return 0


def cmd_abtest(args) -> int:
    from simulation import abtest
    from simulation.outputs import OutputFiles

    scenario, resolved = _scenario(args)
    test = abtest.plan(resolved, args.change, abtest.parse_effects(args.effects),
                       args.replicates, args.min_days, args.min_conversions, args.alpha,
                       args.backend, source="command line")  # before anything runs
    out = Path(args.out)
    console = _console()
    with OutputFiles(inputs=[args.scenario]) as outputs:
        nc = outputs.add("--out", out / "abtest.nc", ABTEST_BYTES)
        png = outputs.add("--out (plot)", out / "power.png", PLOT_BYTES)
        from simulation.analysis.abtest import abtest_table, power_png
        from simulation.io import netcdf_bytes

        runs = len(test.effects) * test.replicates
        progress = ProgressBar(console, f"A/B test of {test.path} in {scenario.name}: {runs} "
                               "runs", "runs", enabled=not args.quiet)
        try:
            ds = abtest.measure(test, jobs=args.jobs, threads=args.threads, progress=progress)
        finally:
            progress.close()
        outputs.write("--out", netcdf_bytes(ds))
        outputs.write("--out (plot)", power_png(ds))
        outputs.commit()
    if not args.quiet:
        console.print(abtest_table(ds))
        console.print(f"A/B test written to {nc} and {png}", markup=False)
    return 0


ABTEST_BYTES = 8 << 20
"""Room an abtest result needs on disk (daily counts per effect, replicate and arm)."""


LIFT_BYTES = 1 << 20
"""Room a lift result needs on disk (a few figures per target and replicate)."""


def _names(text: str | None, flag: str) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise BadInput(f"{flag}: expected names separated by commas")
    return names


def _on_workers(command, args) -> int:
    """A scenario command that runs on the worker pool: the pool's workers end with it (the
    process exits next: no need to wait for them)."""
    from simulation.sweep import pool

    scenario, resolved = _scenario(args)
    try:
        return command(args, _console(), scenario, resolved)
    finally:
        pool.release_workers()


def cmd_calibrate(args) -> int:
    from simulation.calibration.command import calibrate_command

    return _on_workers(calibrate_command, args)


def cmd_optimise(args) -> int:
    from simulation.optimise.command import optimise_command

    return _on_workers(optimise_command, args)


def cmd_sensitivity(args) -> int:
    from simulation.sensitivity.command import sensitivity_command

    return sensitivity_command(args, _console())


def cmd_sweep(args) -> int:
    from simulation.sweep.command import sweep_command

    return sweep_command(args, _console())


def cmd_export_mmm(args) -> int:
    from simulation import export_mmm
    from simulation.outputs import OutputFiles

    path, ds = _load_result(args.result)
    lift = _read(Path(args.lift), f"--lift {args.lift}", "lift result")
    export_mmm.check(ds, lift, str(path), f"--lift {args.lift}")  # before any output
    names = (export_mmm.SERIES, export_mmm.TRUTH, export_mmm.CARD)
    flags = {n: "--out" if n == export_mmm.SERIES else f"--out ({n})" for n in names}
    with OutputFiles(inputs=[path, args.lift]) as outputs:
        for name in names:
            outputs.add(flags[name], Path(args.out) / name, export_mmm.size_estimate(ds))
        files = export_mmm.build(ds, lift, str(path), f"--lift {args.lift}").files()
        for name, text in files.items():
            outputs.write(flags[name], text)
        outputs.commit()
    _console().print(f"MMM export written to {args.out}: {', '.join(names)}", markup=False)
    return 0


def cmd_app(args) -> int:
    import socket

    from simulation.app.session import MAX_AGENTS
    from simulation.scenario import load_scenario

    if args.scenario is not None:
        load_scenario(args.scenario)  # a bad file: one line here, not an error page later
    if args.agents is not None and args.agents > MAX_AGENTS:
        raise BadInput(f"--agents {args.agents:,}: the app simulates at most {MAX_AGENTS:,} "
                       "customers (distsim run has no such cap)")
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((args.host, args.port))
        except OSError as exc:
            raise BadInput(f"--host {args.host} --port {args.port}: cannot listen there "
                           f"({exc.strerror or exc}); choose another --port, or a --host of "
                           "this machine") from None
    from simulation.app.server import serve

    _console().print(f"distsim app on http://{args.host}:{args.port} (Ctrl-C stops it)",
                     markup=False)
    serve(args.scenario, args.host, args.port, args.agents)
    return 0


class Parser(argparse.ArgumentParser):
    """argparse with the project's error format: one line naming the command and the
    problem, exit 2 (argparse's own prints its usage first, several lines)."""

    def error(self, message: str):
        _err(f"{self.prog}: {message} (see {self.prog} --help)")
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    from simulation.analysis.kinds import DESCRIPTIONS, KINDS
    from simulation.analysis.kinds import KPIS as SWEEP_KPIS
    from simulation.version import __version__

    ap = Parser(prog="distsim", description="Agent-based simulator of distribution strategies.")
    ap.add_argument("--version", action="version", version=f"distsim {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a scenario, print the channel summary, write the result")
    run.add_argument("scenario", help="scenario TOML file")
    arguments.size(run, overrides="override a scenario field (TOML literal), e.g. "
                                  "channels.search.daily_budget=500")
    run.add_argument("--out", help="result NetCDF file (default results/<scenario>.nc)")
    run.add_argument("--plot", help="also write a funnel plot PNG here")
    run.add_argument("--events", help="write the events of a customer sample to this Parquet file")
    run.add_argument("--events-sample", type=arguments.positive, default=10_000, metavar="N",
                     help="customers in the event sample (default 10000)")
    run.add_argument("--backend", choices=("numba", "mesa"), default="numba",
                     help="numba: the kernels (default); mesa: one Mesa agent per customer, "
                          "the reference for docking (up to ~100k customers, slow)")
    run.add_argument("--threads", type=arguments.positive,
                     help="numba threads (results do not depend on it); with --scheduler, "
                          "each shard's (default: its worker's threads)")
    run.add_argument("--scheduler", metavar="ADDRESS",
                     help="split the market into shards held by the workers of the Dask "
                          "cluster at ADDRESS (the same result as on one machine)")
    run.add_argument("--shards", type=arguments.positive, metavar="N",
                     help="shards of the market with --scheduler (default: one per worker; "
                          "at most one per 16,384 customers)")
    arguments.quiet(run)
    run.set_defaults(func=cmd_run)

    app = sub.add_parser("app", help="explore a scenario in the browser: move budgets and "
                                      "programmes, run, compare with the previous run")
    app.add_argument("scenario", nargs="?", help="scenario TOML file opened first (default: "
                                                 "the first example of scenarios/)")
    app.add_argument("--agents", type=arguments.positive,
                     help="customers simulated at first (default the file's; the page can change "
                          "it)")
    app.add_argument("--host", default="127.0.0.1", help="address to listen on (default "
                                                          "127.0.0.1: this machine only)")
    app.add_argument("--port", type=_port, default=8765, help="port (default 8765)")
    app.set_defaults(func=cmd_app)

    val = sub.add_parser("validate", help="check a scenario file without running it")
    val.add_argument("scenario")
    val.add_argument("--set", action="append", default=[], metavar="PATH=VALUE")
    val.set_defaults(func=cmd_validate)

    vm = sub.add_parser("validate-model", help="run the model validation suite: closed forms, "
                                               "conservation laws, stylised facts (a few minutes)")
    vm.add_argument("-k", metavar="EXPRESSION", help="only the tests matching (as pytest -k)")
    vm.set_defaults(func=cmd_validate_model)

    plot = sub.add_parser("plot", help="plot a saved result or sweep")
    plot.add_argument("result", help="result NetCDF file, or a sweep directory / its combined.nc")
    plot.add_argument("--kind", choices=KINDS, default="funnel",
                      help="; ".join(f"{k}: {DESCRIPTIONS[k]}" for k in KINDS).replace("%", "%%"))
    plot.add_argument("--metric", choices=tuple(SWEEP_KPIS), default=None,
                      help="figure for --kind heatmap (default profit) or variants (default four)")
    plot.add_argument("--out", help="PNG file (default beside the result)")
    plot.set_defaults(func=cmd_plot)

    report = sub.add_parser("report", help="write one self-contained HTML report of a result or sweep")
    report.add_argument("result", help="result NetCDF file, a sweep directory / its "
                                       "combined.nc, or a calibration directory / its "
                                       "posterior.nc (default --out: DIR/report.html)")
    report.add_argument("--out", help="HTML file (default beside the result)")
    report.add_argument("--lift", metavar="LIFT.nc",
                        help="a distsim lift result of the same scenario: diagnostics read "
                             "beside it, and a section of what each hold-out caused")
    report.set_defaults(func=cmd_report)

    lift = sub.add_parser("lift", help="what each channel or programme caused: the scenario "
                                       "run again with it held out, on the same seeds")
    lift.add_argument("scenario", help="scenario TOML file")
    lift.add_argument("--channels", metavar="A,B",
                      help="channels to hold out, one at a time (default: every enabled "
                           "channel); with two or more, also all together (all_channels)")
    lift.add_argument("--programmes", metavar="X,Y",
                      help="post-purchase programmes to hold out, one at a time (e.g. "
                           "reminders,community)")
    lift.add_argument("--from-day", type=arguments.non_negative, default=0, metavar="D",
                      help="hold out from day D on (a scheduled change; default 0)")
    lift.add_argument("--replicates", type=arguments.positive, default=3,
                      help="paired replicates (seeds) of the base and each hold-out (default 3)")
    arguments.workers(lift)
    arguments.size(lift, seed="override simulation.seed (the replicate seeds derive from it)")
    lift.add_argument("--out", help="lift NetCDF file (default results/<scenario>_lift.nc)")
    lift.add_argument("--plot", help="also write the lift plot PNG here")
    arguments.quiet(lift)
    lift.set_defaults(func=cmd_lift)

    mmm = sub.add_parser("export-mmm", help="a run's daily series for marketing-mix models, "
                                            "with the true channel effects from its lift")
    mmm.add_argument("result", help="result NetCDF file of distsim run (with start_date)")
    mmm.add_argument("--lift", required=True, metavar="LIFT.nc",
                     help="distsim lift of the same scenario, size and seeds")
    mmm.add_argument("--out", required=True, metavar="DIR",
                     help="directory for series.csv, truth.csv and README.md")
    mmm.set_defaults(func=cmd_export_mmm)

    ab = sub.add_parser("abtest", help="a controlled test: two arms of one market, the "
                                       "stopping rule's power against a z-test's")
    ab.add_argument("scenario", help="scenario TOML file")
    ab.add_argument("--change", required=True, metavar="PATH=VALUE",
                    help="the treatment arm's change (a field that can differ between arms "
                         "of one market: README, The controlled test)")
    ab.add_argument("--effects", metavar="M1,M2,...",
                    help="effect sizes as multipliers of the change: the treatment gets "
                         "base + M x (VALUE - base); 0 is the null (default 0,0.5,1,1.5,2)")
    ab.add_argument("--replicates", type=arguments.positive, default=20,
                    help="replicates (seeds) per effect size (default 20)")
    ab.add_argument("--min-days", type=arguments.positive, default=14,
                    help="the rule's minimum length in days (default 14)")
    ab.add_argument("--min-conversions", type=arguments.positive, default=100,
                    help="the rule's conversions per arm (default 100)")
    ab.add_argument("--alpha", type=float, default=0.05,
                    help="the z-test's significance level, two-sided (default 0.05)")
    arguments.workers(ab, threads="numba threads per run (default: the cores shared between "
                                  "jobs)", cluster=False)
    ab.add_argument("--backend", choices=("numba", "mesa"), default="numba")
    arguments.size(ab, agents="override simulation.agents (must equal the market's size)",
                   seed="override simulation.seed (the replicate seeds derive from it)")
    ab.add_argument("--out", required=True, metavar="DIR",
                    help="directory for abtest.nc and power.png")
    arguments.quiet(ab)
    ab.set_defaults(func=cmd_abtest)
    cal = sub.add_parser("calibrate", help="fit the scenario's free parameters to observed "
                                           "figures (ABC-SMC): posterior, calibrated "
                                           "scenario, fit plot")
    cal.add_argument("scenario", help="scenario TOML file")
    cal.add_argument("--targets", required=True, metavar="TARGETS.toml",
                     help="observed figures, free parameters and their priors (see "
                          "docs/calibration.md)")
    cal.add_argument("--out", metavar="DIR",
                     help="directory for calibrated.toml, posterior.nc, fit.png, fit.csv "
                          "(default results/<scenario>_calibration/)")
    cal.add_argument("--evaluations", type=arguments.positive, default=20_000, metavar="N",
                     help="most parameter sets the fit may evaluate (default 20000); each "
                          "is [fit] replicates runs")
    cal.add_argument("--resume", action="store_true",
                     help="finish the calibration in --out from its checkpoint")
    arguments.workers(cal)
    arguments.size(cal, agents="customers simulated per run (the sample; the answer is in "
                               "market units whatever it is)",
                   seed="override simulation.seed (the fit's seed unless [fit] seed is set)")
    arguments.quiet(cal, "tables")
    cal.set_defaults(func=cmd_calibrate)

    from simulation.optimise.command import add_arguments as optimise_arguments

    opt = sub.add_parser("optimise", help="the split of a total daily budget across channels "
                                          "that maximises profit (CMA-ES on common seeds, "
                                          "checked on fresh ones)")
    optimise_arguments(opt)
    opt.set_defaults(func=cmd_optimise)

    from simulation.sensitivity.command import add_arguments as sensitivity_arguments

    sens = sub.add_parser("sensitivity", help="which assumptions ([[uncertain]]) drive the "
                                              "objective and each key outcome: Morris "
                                              "screening or Sobol indices (SALib), a tornado")
    sensitivity_arguments(sens)
    sens.set_defaults(func=cmd_sensitivity)

    sweep = sub.add_parser("sweep", help="run an experiment: variants and swept parameters "
                                         "over replicates, in parallel")
    sweep.add_argument("experiment", help="experiment TOML file (see experiments/)")
    arguments.workers(sweep, threads="numba threads per run (default: the cores shared "
                                     "between jobs)")
    sweep.add_argument("--resume", action="store_true",
                       help="finish the sweep in --out, keeping the runs already done")
    sweep.add_argument("--out", help="directory (default results/<experiment>/)")
    arguments.size(sweep, agents="override the base scenario's agents",
                   days="override the base scenario's days", overrides=None,
                   seed="override the experiment's seed (every run seed and draw derives "
                        "from it)")
    sweep.add_argument("--replicates", type=arguments.positive,
                       help="override the experiment's replicates")
    sweep.add_argument("--draws", type=arguments.positive,
                       help="override the experiment's assumption draws ([[uncertain]])")
    sweep.add_argument("--objective", metavar="METRIC[:max|min]",
                       help="pick the best variant by this outcome (default: the experiment's)")
    arguments.quiet(sweep)
    sweep.set_defaults(func=cmd_sweep)
    return ap


def main(argv: list[str] | None = None) -> int:
    from simulation.outputs import OutputError
    from simulation.scenario import ScenarioError

    args = build_parser().parse_args(argv)
    try:
        with _terminate_as_interrupt():
            return args.func(args)
    except (ScenarioError, BadInput, OutputError) as exc:
        return _err(str(exc))
    except KeyboardInterrupt:
        _err("interrupted; no output written")
        return EXIT_INTERRUPTED


@contextlib.contextmanager
def _terminate_as_interrupt():
    """SIGTERM ends a command like Ctrl-C: outputs not yet committed are discarded.

    Both signals are also noted (:data:`simulation.outputs.STOP_ASKED`): one that
    arrives while numba calls back into Python from compiled code (writing a kernel to its
    cache) raises inside the callback, which swallows it, and the command would go on to
    commit its outputs as if no one had asked it to stop."""
    def handler(signum, frame):
        STOP_ASKED.set()
        raise KeyboardInterrupt

    STOP_ASKED.clear()
    try:
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def entry_point() -> None:
    """``distsim`` and ``python -m simulation``: :func:`main`, then exit with its status.

    Everything is written and closed by then, so the objects left are frozen
    (``gc.freeze``) instead of collected: Python's last garbage collection walks every
    object numba, xarray and pandas made, about half a second for nothing.
    """
    import gc

    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    entry_point()
