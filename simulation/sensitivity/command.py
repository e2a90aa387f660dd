"""``distsim sensitivity EXPERIMENT.toml --method morris|sobol [--samples N] --out DIR``.

Validates everything before it runs or writes (one line, exit 2), runs the design on
the sweep runner with a progress bar (``DIR/runs/``, ``DIR/manifest.json``: a killed
run resumes with ``--resume``), then writes ``DIR/sensitivity.nc``,
``DIR/sensitivity.png`` and ``DIR/sensitivity.csv`` together (all or nothing) and
prints the indices.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from simulation.progress import ProgressBar
from simulation.scenario import ScenarioError

OUTPUTS = ("sensitivity.nc", "sensitivity.png", "sensitivity.csv")
SHOWN = ("customers", "cac", "ltv_cac")
"""Key outcomes shown beside the objective in the console table."""
NC_BYTES_PER_RUN = 200


def add_arguments(p) -> None:
    from simulation import arguments
    from simulation.arguments import positive

    p.add_argument("experiment", help="experiment TOML file with [[uncertain]] parameters "
                                      "(the factors)")
    p.add_argument("--method", choices=("morris", "sobol"), default="morris",
                   help="morris: screening, N x (D + 1) rows (default); sobol: variance "
                        "shares S1 and ST, N x (D + 2) rows")
    p.add_argument("--samples", type=positive, metavar="N",
                   help="Morris trajectories (default 10) or Sobol's base sample, a power "
                        "of two (default 256; SALib advises thousands per parameter)")
    p.add_argument("--parameters", metavar="PATH,PATH",
                   help="vary only these uncertain parameters (e.g. the Morris survivors "
                        "for Sobol); the others keep the base scenario's values")
    p.add_argument("--variant", metavar="NAME",
                   help="the decision to analyse: a named variant of the experiment "
                        "(default: the base with the experiment's set)")
    p.add_argument("--replicates", type=positive,
                   help="runs per row, on seeds shared by every row (default: the "
                        "experiment's replicates)")
    p.add_argument("--out", metavar="DIR",
                   help="directory for sensitivity.nc, sensitivity.png, sensitivity.csv "
                        "and the runs (default results/<experiment>_sensitivity/)")
    p.add_argument("--resume", action="store_true",
                   help="finish the design in --out, keeping the runs already done")
    arguments.workers(p)
    arguments.size(p, agents="override the base scenario's agents",
                   days="override the base scenario's days", overrides=None,
                   seed="override the experiment's seed (the design and the replicate seeds "
                        "derive from it)")
    arguments.quiet(p)


def prepare(args):
    """The experiment at the command line's size, the decision analysed, the design."""
    from simulation.sensitivity.design import design, factors_of
    from simulation.sweep.command import load_sized
    from simulation.sweep.experiment import Experiment, _apply

    experiment = load_sized(args)
    spec = experiment.spec
    variant = None
    if args.variant is not None:
        names = {v.name: v for v in spec.variants}
        if args.variant not in names:
            raise ScenarioError("--variant", "", f"'{args.variant}' is not a variant of "
                                f"{experiment.source} (it has "
                                f"{', '.join(names) or 'none'})")
        variant = names[args.variant]
        base = _apply(experiment.base, variant.set, experiment.source,
                      f"variants.{variant.name}.set")
        experiment = Experiment(spec, base, experiment.source, experiment.text,
                                experiment.assumptions)
    names = None
    if args.parameters is not None:
        names = [n.strip() for n in args.parameters.split(",") if n.strip()]
        if not names:
            raise ScenarioError("--parameters", "", "expected paths separated by commas")
    factors = factors_of(experiment, names)
    d = design(experiment, args.method, args.samples, factors)
    return experiment, variant, d


def sensitivity_command(args, console: Console) -> int:
    from simulation.sweep import pool

    try:
        return _sensitivity(args, console)
    finally:
        pool.release_workers()  # the process exits next: no need to wait for them


def _sensitivity(args, console: Console) -> int:
    from simulation.outputs import OutputFiles, check_directory

    experiment, variant, d = prepare(args)
    out = Path(args.out) if args.out else (
        Path("results") / f"{Path(args.experiment).stem}_sensitivity")
    check_directory("--out", out)
    runs = d.rows * experiment.spec.replicates
    from simulation.sweep.command import start_local_workers

    start_local_workers(args.jobs, args.threads, args.scheduler)
    from simulation.sensitivity.design import analyse, dataset, run_design
    from simulation.sensitivity.plots import tornado_png

    if not args.quiet:
        held = ""
        if experiment.spec.variants or experiment.spec.sweep:
            held = (f"; decisions: {variant.name if variant else 'the base'} (variants and "
                    "sweeps are not factors; --variant NAME picks a variant)")
        console.print(f"{d.method}: {len(d.factors)} assumption(s), {d.rows} rows x "
                      f"{experiment.spec.replicates} replicate(s) = {runs:,} runs of "
                      f"{experiment.base.simulation.agents:,} customers x "
                      f"{experiment.base.simulation.days} days{held}", markup=False)
    progress = ProgressBar(console, f"sensitivity of {experiment.name} ({d.method})", "runs",
                           enabled=not args.quiet)
    t0 = time.perf_counter()
    with OutputFiles(inputs=[args.experiment]) as outputs:
        for name in OUTPUTS:  # reserved before the runs: a bad --out fails now
            outputs.add(name, out / name, NC_BYTES_PER_RUN * runs if name.endswith(".nc")
                        else 1 << 20)
        try:
            ran, y = run_design(experiment, d, out, jobs=args.jobs, scheduler=args.scheduler,
                                resume=args.resume, threads=args.threads, progress=progress,
                                keep_workers=False)
        except KeyboardInterrupt:
            progress.close()
            console.print(f"interrupted: the runs done are saved in {out / 'runs'}; finish "
                          f"with --resume --out {out}", markup=False)
            return 130
        finally:
            progress.close()
        ds = dataset(experiment, d, y, analyse(d, y), variant.name if variant else None)
        from simulation.io import netcdf_bytes

        outputs.write("sensitivity.nc", netcdf_bytes(ds))
        outputs.write("sensitivity.png", tornado_png(ds))
        outputs.write("sensitivity.csv", indices_csv(ds))
        outputs.commit()
    ran.store.write_manifest("complete", sensitivity="sensitivity.nc")
    if not args.quiet:
        console.print(indices_table(ds))
        for line in advice(ds, args):
            console.print(line, markup=False, soft_wrap=True)
        console.print(f"{ran.computed} run(s) computed, {ran.reused} reused, in "
                      f"{time.perf_counter() - t0:.1f} s; indices {out / 'sensitivity.nc'}, "
                      f"tornado {out / 'sensitivity.png'}", markup=False)
    return 0


def indices_csv(ds) -> str:
    names = [n for n in ("mu_star", "mu_star_conf", "mu", "sigma", "S1", "S1_conf", "ST",
                         "ST_conf", "rank") if n in ds]
    frame = ds[names].to_dataframe().reset_index()
    return frame.to_csv(index=False, float_format="%.6g")


def indices_table(ds) -> Table:
    from simulation.sensitivity.design import fmt
    from simulation.sensitivity.plots import direction

    objective = ds.attrs["objective"]
    morris = ds.attrs["method"] == "morris"
    title = (f"{escape(ds.attrs['experiment_name'])}: {ds.attrs['method']} sensitivity of "
             f"{objective}" + (" (mu*: mean |change| over each assumption's range, ± 95%)"
                               if morris else " (variance shares, ± 95%)"))
    table = Table(title=title, caption_justify="left")
    table.add_column("assumption", justify="left")
    table.add_column("distribution", justify="left")
    if morris:
        table.add_column(f"{objective} mu*", justify="right")
        table.add_column("direction", justify="left")
        table.add_column("sigma", justify="right")
    else:
        table.add_column(f"{objective} S1", justify="right")
        table.add_column(f"{objective} ST", justify="right")
    shown = [o for o in SHOWN if o != objective and o in ds.outcome.values]
    for o in shown:
        table.add_column(f"{o} {'mu*' if morris else 'ST'}", justify="right")
    key = "mu_star" if morris else "ST"
    s = ds.sel(outcome=objective)
    for i in s[key].fillna(-1).argsort().values[::-1]:
        p = ds.parameter.values[i]
        cells = [str(p), str(ds.distribution.values[i])]
        if morris:
            cells += [f"{fmt(float(s.mu_star[i]))} ± {fmt(float(s.mu_star_conf[i]))}",
                      direction(float(s.mu[i]), float(s.mu_star[i])), fmt(float(s.sigma[i]))]
        else:
            cells += [f"{fmt(float(s.S1[i]))} ± {fmt(float(s.S1_conf[i]))}",
                      f"{fmt(float(s.ST[i]))} ± {fmt(float(s.ST_conf[i]))}"]
        cells += [fmt(float(ds[key].sel(outcome=o).values[i])) for o in shown]
        table.add_row(*map(escape, cells))
    return table


def advice(ds, args) -> list[str]:
    """What to run next: Sobol on the Morris survivors."""
    if ds.attrs["method"] != "morris":
        return ["small negative S1 are sampling error; Sobol needs thousands of rows per "
                "parameter for tight intervals (--samples)"]
    keep = [s for s in ds.attrs.get("survivors", "").split(",") if s]
    dropped = len(ds.parameter) - len(keep)
    if not keep:
        return [f"no assumption moves {ds.attrs['objective']}"]
    return [f"{len(keep)} assumption(s) survive the screening (mu* on "
            f"{ds.attrs['objective']} at least 5% of the largest; {dropped} dropped); next: "
            f"distsim sensitivity {args.experiment} --method sobol --parameters "
            f"{','.join(keep)}"]
