"""The process around it all: config, runtime and wiring, CLI, HTTP server, logs, metrics, stats."""
