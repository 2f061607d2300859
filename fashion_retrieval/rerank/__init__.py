"""Re-ranking of retrieved candidates (top-n in, re-scored top-n out)."""
