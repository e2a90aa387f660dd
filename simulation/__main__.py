from simulation.cli import entry_point

entry_point()
