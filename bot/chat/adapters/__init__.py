"""Chat adapters: one module per platform behind the `ChatAdapter` protocol in `base`."""
