"""Reusable network blocks; the recipes in :mod:`gantrain.recipes` assemble them."""
