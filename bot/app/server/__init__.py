"""The one HTTP server: webhooks, chat callbacks, JSON API, ops endpoints and the console."""
