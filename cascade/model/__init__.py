"""Cost models: traffic (exact, symbolic), compute and latency on spatial and grid targets."""
