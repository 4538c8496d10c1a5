"""The chat layer: router, conversations, the message model, renderers and one adapter per platform."""
