"""Background work: the durable outbox and the jobs it runs."""
