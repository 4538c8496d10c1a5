"""LLM providers behind one protocol, and the chain that falls back between them."""
