"""Incidents: lifecycle, actions and policy, diagnoses, tickets, postmortems, memory of what fixed it."""
