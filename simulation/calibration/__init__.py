"""Calibration: the scenario's free parameters fitted to observed figures.

``distsim calibrate SCENARIO.toml --targets TARGETS.toml --out DIR`` reads what the
business observed and which scenario fields are uncertain (:mod:`.targets`, with their
priors in :mod:`.priors`), runs an ABC-SMC fit (:mod:`.fit`) whose evaluations are
simulations on worker processes or a Dask cluster (:mod:`.evaluate`), checkpoints every
round so that a killed fit resumes, and writes the posterior, the calibrated scenario
and the observed-versus-simulated check (:mod:`.command`, :mod:`.plots`).

Why an ABC-SMC written here rather than pyabc or optuna is in docs/calibration.md.
"""
