"""The offline, rule-based diagnosis engine: one rule per failure pattern, no network."""

from agent.offline.engine import MODEL, RULES, diagnose
from agent.offline.model import Finding, Rule

__all__ = ["MODEL", "RULES", "Finding", "Rule", "diagnose"]
