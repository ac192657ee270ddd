#!/usr/bin/env bash
# Set everything up and serve: ImageNet weights if they can be had, else the offline demo model.
#   bash scripts/serve.sh [bentoml serve options, e.g. --port 3000]
#   WEIGHTS_FILE=resnet50-11ad3fa6.pth bash scripts/serve.sh    # air-gapped ImageNet weights
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh requirements.txt

if bentoml models get "${CLASSIFIER_MODEL_TAG:-resnet50:latest}" >/dev/null 2>&1; then
  echo "==> serving the model already in the store (python -m train ... replaces it)"
elif [ -n "${WEIGHTS_FILE:-}" ]; then
  python -m train imagenet --weights-file "$WEIGHTS_FILE"
elif ! python -m train imagenet; then
  echo
  echo "==> NO IMAGENET WEIGHTS: training the offline DEMO model (shapes, 4 to 5 minutes)."
  echo "    It recognises circle, cross, square, star and triangle, not ImageNet classes;"
  echo "    /info and every answer's model tag say so."
  python -m train demo
fi
exec bentoml serve service:ImageClassifier "$@"
