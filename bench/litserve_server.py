"""A peer framework for the benchmark: the same model served with LitServe, as its users write it.

`python -m bench.litserve_server --host H --port P` with BASELINE_MODEL_DIR set (the model as
`weights.pt` + `card.json`). As LitServe's image-classification examples do, `decode_request`
opens the upload with PIL and applies torchvision's `weights.transforms()`, in the inference
worker; LitServe batches up to 16 within 20 ms. The model runs at the service's precision,
eager or compiled as CLASSIFIER_COMPILE says, through the service's own `Predictor`: so the
difference between LitServe and the service is the server's, not the model's.
"""

from __future__ import annotations

import argparse
import io
import json
import os
from pathlib import Path

import litserve as ls
import torch
from PIL import Image
from torchvision.models import ResNet50_Weights

from classifier.artifact import load_model
from classifier.inference import Predictor, top_k
from classifier.settings import get_settings


class ResNetAPI(ls.LitAPI):
    def setup(self, device) -> None:
        directory = Path(os.environ["BASELINE_MODEL_DIR"])
        metadata = json.loads((directory / "card.json").read_text())
        model, self.card = load_model(directory, metadata)
        self.transforms = ResNet50_Weights.IMAGENET1K_V2.transforms()
        self.predictor = Predictor(model, self.card, **get_settings().predictor_options())
        self.predictor.warm_up()

    def decode_request(self, request) -> torch.Tensor:
        upload = request["image"]
        data = upload.file.read() if hasattr(upload, "file") else upload
        return self.transforms(Image.open(io.BytesIO(data)).convert("RGB"))

    def batch(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(inputs)

    def predict(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.predictor.probabilities(inputs)

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
