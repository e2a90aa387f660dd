"""``distsim sensitivity``: which assumptions drive the objective and each key outcome.

An experiment's ``[[uncertain]]`` parameters are the factors. SALib draws a design over
them (Morris trajectories to screen, Saltelli's Sobol' design to apportion variance),
every row of the design is a run on the sweep runner (run files, manifest, resume,
worker processes or a Dask cluster), every row on the same replicate seeds (common
random numbers: a parameter that cannot matter has elementary effects of exactly 0),
and SALib analyses the rows' outcomes. ``DIR/sensitivity.nc`` holds the indices over
(``parameter``, ``outcome``); ``DIR/sensitivity.png`` the objective's tornado.

    from simulation.sensitivity import design, run_design, analyse
"""

from simulation.sensitivity.design import (  # noqa: F401
    METHODS,
    Design,
    analyse,
    design,
    design_plan,
    run_design,
)
