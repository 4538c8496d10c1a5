"""Ticketing: filing and updating issues in Jira (Cloud or Server/Data Center)."""

from integrations.tickets.jira import JiraTickets
from integrations.tickets.model import JiraUser, TicketRef, TicketSystem

__all__ = ["JiraTickets", "JiraUser", "TicketRef", "TicketSystem"]
