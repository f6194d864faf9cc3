"""gantrain: config-driven training of generative adversarial networks."""

from gantrain.api import load

__version__ = "0.1.0"
__all__ = ["__version__", "load"]
