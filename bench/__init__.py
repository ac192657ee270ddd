"""Benchmarks: `python -m bench` measures the raw model, the service, a peer framework (LitServe)
and a tutorial-style server.

Every figure is measured in one run on one machine, so that ratios are comparable; the command
rewrites BENCHMARKS.md and bench/throughput.png.
"""

# the contenders' names, as the report shows them
SERVICE = "service"
SERVICE_EAGER = "service, eager model"
SERVICE_2W = "service, 2 workers x 1 thread"
BENTOML_BATCHER = "service, BentoML's batcher in a model service"
BASELINE = "tutorial baseline"
LITSERVE = "LitServe"
LITSERVE_COMPILED = "LitServe, compiled model"
