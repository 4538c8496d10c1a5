"""Agent errors.

AgentError
 └── ProviderError          an LLM provider failed (down, 5xx, 429, timeout, bad output)
      └── InvalidOutput     the provider answered, but not a valid Diagnosis/Intent
"""

from __future__ import annotations


class AgentError(Exception):
    """Root of the agent's errors."""


class ProviderError(AgentError):
    """An LLM provider could not give a usable answer; the chain falls to the next layer."""


class InvalidOutput(ProviderError):
    """The model's answer was not valid JSON or did not match the schema."""
