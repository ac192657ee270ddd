"""Everything the image-classification service needs but its service classes and training.

Image ingest and validation (`ingest`), preprocessing (`preprocess`), the saved-model format
(`artifact`), the residual blocks a loaded model skips (`identity_blocks`), inference and top-k
(`inference`), the compiled model (`compilation`), continuous batching (`batching`),
request/response schemas (`schemas`) and settings (`settings`) import no web framework, so all
of them are unit-testable without one. The model as served (`served_model`) uses BentoML's model
store and metrics; the HTTP layer is its own subpackage (`http`), and `testing` holds what the
tests and the benchmarks share.
"""

__version__ = "0.1.0"
