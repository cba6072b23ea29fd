"""Training stages, one readable loop each: rl.py (R1-Zero / GRPO family)."""
