"""``distsim app``: serve the page (:mod:`simulation.app.page`) on this machine.

Solara's server is a Starlette app that uvicorn runs; it finds the page through
``SOLARA_APP``. Its page scripts come from the ``solara-assets`` package (installed with
distsim), so the page works without a network.
"""

from __future__ import annotations

import os
from pathlib import Path

from simulation.app.session import AGENTS_ENV, SCENARIO_ENV


def serve(scenario: Path | None, host: str, port: int, agents: int | None = None) -> None:
    """Serve the app until interrupted; ``scenario`` opens first, at ``agents`` customers."""
    os.environ["SOLARA_APP"] = "simulation.app.page"
    os.environ.setdefault("SOLARA_TELEMETRY_MIXPANEL_ENABLE", "False")
    if scenario is not None:
        os.environ[SCENARIO_ENV] = str(Path(scenario).resolve())
    if agents is not None:
        os.environ[AGENTS_ENV] = str(agents)
    import warnings

    import uvicorn

    # over plain http on this machine the session cookie is SameSite=Lax, as it should be;
    # Solara says so at every page load in a dozen lines
    warnings.filterwarnings("ignore", message="Cookies with samesite=none require https")

    uvicorn.run("solara.server.starlette:app", host=host, port=port, log_level="warning")
