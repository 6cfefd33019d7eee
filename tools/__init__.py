"""Developer tools: local runtime, reports, drills and benchmarks, run as `python -m tools.<name>`."""
