"""Evaluation of llm_extract against the hand-labelled gold set (``python -m evals.run``)."""
