"""The llmtunnel command line, the demo and the simulated Ollama."""

__version__ = "0.1.0"
