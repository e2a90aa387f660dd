"""``distsim app``: the model in a browser page (Solara) to explore before sweeping.

:mod:`simulation.app.session` holds what the page does (knobs, a run that can be
stopped, the comparison with the previous run, the downloads); :mod:`simulation.app.page`
lays it out; :mod:`simulation.app.server` serves it.
"""
