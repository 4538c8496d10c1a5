"""The reasoning: investigation loop, LLM chain, offline diagnosis, intents, redaction."""
