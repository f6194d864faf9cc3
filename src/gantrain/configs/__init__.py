"""The Hydra config tree, shipped inside the package so an installed gantrain finds it."""
