"""A peer framework for the benchmark: the same model served with LitServe, as its docs suggest.

`python -m bench.litserve_server --host H --port P` with BASELINE_MODEL_DIR set (the model as
`weights.pt` + `card.json`). LitServe decodes each request in `decode_request` inside its
inference worker, batches up to 16 within 20 ms, and runs the model at the service's precision.
Started by `python -m bench` when litserve is installed (it is in requirements-dev.txt).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import litserve as ls
import numpy as np

from classifier.artifact import load_model
from classifier.inference import Predictor, top_k
from classifier.settings import get_settings


class ResNetAPI(ls.LitAPI):
    def setup(self, device) -> None:
        directory = Path(os.environ["BASELINE_MODEL_DIR"])
        metadata = json.loads((directory / "card.json").read_text())
        model, self.card = load_model(directory, metadata)
        settings = get_settings()
        self.predictor = Predictor(model, self.card, precision=settings.precision)
        self.predictor.warm_up((1, settings.max_batch_size))

    def decode_request(self, request) -> np.ndarray:
        upload = request["image"]
        data = upload.file.read() if hasattr(upload, "file") else upload
        return self.card.preprocessing.prepare_bytes(data, max_pixels=10**9)

    def batch(self, inputs: list[np.ndarray]) -> np.ndarray:
        return np.stack(inputs)

    def predict(self, pixels: np.ndarray):
        return self.predictor.predict(pixels)

    def unbatch(self, output) -> list:
        return list(output)

    def encode_response(self, probabilities) -> dict:
        predictions = top_k(probabilities, self.card.labels, 5)
        return {"predictions": [p.model_dump() for p in predictions]}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.litserve_server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    api = ResNetAPI(
        api_path="/predict", max_batch_size=get_settings().max_batch_size, batch_timeout=0.02
    )
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1, timeout=120)
    server.run(host=args.host, port=args.port, generate_client_file=False, num_api_servers=1)


if __name__ == "__main__":
    main()
