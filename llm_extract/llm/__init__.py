"""LLM backends: any OpenAI-compatible endpoint (backend.py) and the embedded local model (local.py)."""
