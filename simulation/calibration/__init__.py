"""Calibration: the scenario's free parameters fitted to observed figures.

``distsim calibrate SCENARIO.toml --targets TARGETS.toml --out DIR`` reads what the
business observed and which scenario fields are uncertain (:mod:`.targets`, with their
priors in :mod:`.priors`), runs pyabc's ABC-SMC (:mod:`.fit`: our distance, tolerance
and a seeded sampler around it) whose evaluations are simulations on worker processes or
a Dask cluster (:mod:`.evaluate`), keeps every generation in pyabc's History database so
that a killed fit resumes, and writes the posterior, the calibrated scenario and the
observed-versus-simulated check (:mod:`.command`, :mod:`.plots`).

Why pyabc rather than optuna, and how its search is kept reproducible and resumable, is
in docs/calibration.md.
"""
