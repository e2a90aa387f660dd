"""Power of the "two weeks or 100 conversions" rule against a fixed-horizon z-test.

Runs ``distsim abtest``'s measurement (:mod:`simulation.abtest`) on a scenario and
prints, per effect size: the true effect (treatment minus control conversion rate at the
end of the run, mean over replicates), and for both readings of the rule and the z-tests
matched to them the share of tests picking the better arm, the worse one (at the null:
each arm), and the mean days to decide. Figures only: nothing here is asserted.

    PYTHONPATH=. python benchmarks/abtest_power.py --agents 20000 --days 60 --replicates 20
"""

from __future__ import annotations

import argparse
import time

from simulation import abtest, load_scenario
from simulation.analysis.abtest import METHODS
from simulation.scenario import resolve_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="scenarios/default.toml")
    ap.add_argument("--change", default="channels.search.effects.decision=0.2")
    ap.add_argument("--effects", default="0,0.5,1,1.5,2")
    ap.add_argument("--agents", type=int, default=20_000)
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--replicates", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    sc = load_scenario(args.scenario, [f"market.size={args.agents}"])
    sc = resolve_size(sc, args.agents, args.days)
    test = abtest.plan(sc, args.change, abtest.parse_effects(args.effects), args.replicates)
    start = time.perf_counter()
    ds = abtest.measure(test, jobs=args.jobs, threads=args.threads)
    took = time.perf_counter() - start
    print(f"{args.scenario}: {args.change} (base {test.base_value:g}), {args.agents:,} "
          f"customers x {args.days} days, {args.replicates} replicates per effect, "
          f"{took:.0f} s ({took / (len(test.effects) * args.replicates):.2f} s a run)")
    print("z-test horizons: " + ", ".join(f"{m} {int(ds.horizon.sel(procedure=m))} days"
                                          f"{'' if ds.horizon_matched.sel(procedure=m) else ' (unmatched)'}"
                                          for m in METHODS if m.startswith("ztest")))
    head = f"{'effect':>6} {'value':>7} {'true effect (pp)':>17}"
    for m in METHODS:
        head += f" | {m:^22}"
    print(head)
    for e in range(ds.sizes["effect"]):
        sel = ds.isel(effect=e)
        row = (f"{float(sel.effect):>6g} {float(sel.value):>7.4g} "
               f"{float(sel.true_effect) * 100:>+8.3f} ± {float(sel.true_effect_se) * 100:.3f}")
        for m in METHODS:
            s = sel.sel(procedure=m)
            if float(s.power) == float(s.power):  # not NaN
                cell = f"{float(s.power):.2f}/{float(s.wrong):.2f}"
            else:
                cell = f"T{float(s.picks_treatment):.2f} C{float(s.picks_control):.2f}"
            row += f" | {cell:>12} {float(s.mean_days):5.1f} d"
        print(row)
    print("cells: better/worse arm picked (at effect 0: treatment/control picked), mean days")


if __name__ == "__main__":
    main()
