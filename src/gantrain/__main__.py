"""``python -m gantrain`` (also what torchrun launches): the same as the ``gantrain`` command."""

from gantrain.cli import main

main()
