"""Interactive load test with Locust's web UI, against a running service.

    locust -f bench/locustfile.py --host http://localhost:3000       # then open :8089
    locust -f bench/locustfile.py --host http://localhost:3000 --headless -u 32 -r 8 -t 60s

A mix of traffic: mostly single uploads, some batches and base64 JSON, and a few bad uploads
that must be refused with a 4xx (counted as successes when they are).
"""

from __future__ import annotations

import base64
import random
import sys
from pathlib import Path

from locust import HttpUser, between, task

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.inputs import photos  # noqa: E402

PHOTOS = photos(12)
SMALL = sorted(PHOTOS, key=len)[:6]  # batches of these stay well under the body size limit
ENCODED = [base64.b64encode(photo).decode() for photo in SMALL[:4]]


class ImageClient(HttpUser):
    wait_time = between(0, 0.2)

    @task(8)
    def predict(self) -> None:
        upload = {"image": ("photo.jpg", random.choice(PHOTOS), "image/jpeg")}
        self.client.post("/predict", files=upload)

    @task(1)
    def predict_batch(self) -> None:
        uploads = [
            ("images", ("photo.jpg", photo, "image/jpeg")) for photo in random.sample(SMALL, 3)
        ]
        self.client.post("/predict_batch", files=uploads)

    @task(1)
    def predict_base64(self) -> None:
        self.client.post("/predict_base64", json={"image": random.choice(ENCODED), "top_k": 3})

    @task(1)
    def bad_upload(self) -> None:
        upload = {"image": ("page.html", b"<html>not an image</html>", "image/jpeg")}
        with self.client.post("/predict", files=upload, catch_response=True) as response:
            if response.status_code == 415:
                response.success()
            else:
                response.failure(f"expected 415, got {response.status_code}")
