"""The version of distsim: its one home (``pyproject.toml`` reads it from here).

Recorded in every result (``simulation_version``) and shown by ``distsim --version``.
"""

__version__ = "0.1.0"
