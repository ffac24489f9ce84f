"""The GPU-box agent: pairing, the outbound tunnel, and the Ollama backend."""
