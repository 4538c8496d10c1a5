"""The outside world: alert parsers, observability clients, action executors, ticketing."""
