"""``distsim optimise``: the split of a total daily budget across channels that
maximises profit, contribution or new customers (docs/optimise.md).

- :mod:`.problem`: validation and the map from free weights onto the budget simplex;
- :mod:`.evaluate`: splits x seeds on the sweep's runner, shrunk to a few figures;
- :mod:`.search`: optuna's CMA-ES in whole generations, journalled, resumable;
- :mod:`.command`: the command: the search, the fresh-seed check, the response
  curves, the outputs;
- :mod:`.plots`: ``response.png``.
"""
