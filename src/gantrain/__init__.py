"""gantrain: config-driven training of generative adversarial networks."""

__version__ = "0.1.0"
