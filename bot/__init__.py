"""The opsbot process: chat adapters, router, incident lifecycle, storage, HTTP server, CLI."""
