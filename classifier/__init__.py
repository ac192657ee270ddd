"""Everything the image-classification service needs that is neither HTTP nor training.

Image ingest and validation (`ingest`), preprocessing (`preprocess`), the saved-model format
(`artifact`), inference and top-k (`inference`), request/response schemas (`schemas`) and
settings (`settings`). Nothing here imports BentoML's server, so all of it is unit-testable
without one.
"""

__version__ = "0.1.0"
