"""The tutorial-style server we compare against: FastAPI + uvicorn, fp32, one forward per request.

What the REST-API tutorials do: decode the upload with PIL, `weights.transforms()`-style
preprocessing, `model(tensor)` under `torch.no_grad()` in FastAPI's thread pool. Started by
`python -m bench` as `uvicorn bench.baseline:app` with BASELINE_MODEL_DIR set.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import torch
from fastapi import FastAPI, UploadFile
from PIL import Image

from classifier.artifact import load_model

directory = Path(os.environ["BASELINE_MODEL_DIR"])
metadata = json.loads((directory / "card.json").read_text())
model, card = load_model(directory, metadata)
app = FastAPI()


@app.post("/predict")
def predict(image: UploadFile) -> dict:
    picture = Image.open(io.BytesIO(image.file.read())).convert("RGB")
    with torch.no_grad():
        probabilities = model(card.preprocessing(picture)[None]).softmax(1)[0]
    scores, indices = probabilities.topk(5)
    return {
        "predictions": [
            {"label": card.labels[i], "index": i, "score": s}
            for s, i in zip(scores.tolist(), indices.tolist())
        ]
    }


@app.get("/readyz")
def readyz() -> str:
    return "ok"
