"""The version of distsim: its one home (``pyproject.toml`` reads it from here).

Recorded in every result (``simulation_version``) and shown by ``distsim --version``.
"""

__version__ = "0.2.0"
"""Bumped whenever the same scenario and seed can give other numbers: a sweep refuses to
resume or combine run files of another version. 0.2.0: a random stream per decision."""
