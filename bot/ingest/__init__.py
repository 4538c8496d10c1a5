"""Alert intake: webhook endpoints that verify, parse and commit deliveries before answering."""
