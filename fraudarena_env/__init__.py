"""FraudArena: a three-role adversarial ad-fraud game for multi-agent RL."""
__version__ = "0.1.0"
