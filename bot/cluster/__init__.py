"""Replicas on one database: identity and heartbeats, the leader, cross-replica events."""
