"""The audit domain: metrics, baselines, drift."""
