#!/usr/bin/env bash
# A rolling model update with no failed request, measured (BENCHMARKS.md "Rolling update"):
#   bash scripts/rolling-update.sh          (as root, after scripts/container-smoke.sh; about 8 minutes)
# Makes a newer model and an image serving it (the smoke test's image with that model's Bento in
# place of its own), then runs classifier/testing/rolling_update.py: two replicas of the old image
# behind HAProxy (from Debian, installed if missing) with health checks on /readyz, a steady stream
# of clients, and each replica replaced in turn by one of the new image, the old one stopped with
# SIGTERM once it has left the load balancer and paused, as on a cluster. Fails unless every request
# was answered 200 and the answers' model switched to the new. Then the same with no warning before
# SIGTERM, to measure what the drain and the pause prevent. Writes bench/KIND/rolling_update.json.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "==> $*"; }
OLD=localhost/image-classifier:smoke
NEW=localhost/image-classifier:rolling-new

podman image exists "$OLD" || { echo "no $OLD: run scripts/container-smoke.sh first" >&2; exit 1; }
if ! command -v haproxy > /dev/null; then
  say "installing haproxy"
  DEBIAN_FRONTEND=noninteractive apt-get update -q > /dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends haproxy > /dev/null
fi
source scripts/setup.sh requirements-dev.txt

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export BENTOML_HOME=$work/bentoml
CLASSIFIER_MODEL_TAG=$(bash scripts/random-model.sh 7)
export CLASSIFIER_MODEL_TAG
bento=$(bentoml build --output tag . | tail -n 1 | sed 's/^__tag__://')
say "newer model $CLASSIFIER_MODEL_TAG in $bento"
# what `bentoml containerize` of this Bento would make, without two minutes of installing the same
# packages again: the old image with this Bento, and the model it names, in place of its own
context=$work/context
cp -r "$(bentoml get "$bento" -o path)" "$context"
model_name=${CLASSIFIER_MODEL_TAG%%:*} model_version=${CLASSIFIER_MODEL_TAG#*:}
mkdir -p "$context/models/$model_name"
cp -r "$(bentoml models get "$CLASSIFIER_MODEL_TAG" -o path)" "$context/models/$model_name/$model_version"
echo "$model_version" > "$context/models/$model_name/latest"
cat > "$work/Containerfile" << CONTAINERFILE
FROM $OLD
USER root
RUN rm -rf "\$BENTO_PATH"/*
COPY --chown=bentoml:bentoml . \$BENTO_PATH/
USER bentoml
CONTAINERFILE
buildah build --quiet --layers=false -f "$work/Containerfile" -t "$NEW" "$context" > /dev/null
podman run --rm --entrypoint ls "$NEW" "/home/bentoml/bento/models/$model_name/$model_version" > /dev/null
say "image $NEW"

python -c "from tests import images; open('$work/photo.jpg', 'wb').write(images.jpeg())"
say "rolling update, as deploy/kubernetes has a cluster do it"
python -m classifier.testing.rolling_update "$OLD" "$NEW" --photo "$work/photo.jpg" \
  --record "$work/warned.json"
say "again, each old replica stopped with no warning: no drain, no preStop pause"
python -m classifier.testing.rolling_update "$OLD" "$NEW" --photo "$work/photo.jpg" \
  --record "$work/unwarned.json" --no-warning
python - << PY
import json
from bench.__main__ import machine
from bench.report import data_file, REPORT
record = {"warned": json.load(open("$work/warned.json")),
          "no_warning": json.load(open("$work/unwarned.json")), "machine": machine()}
data_file(REPORT, "rolling_update.json").write_text(json.dumps(record, indent=1))
PY
say "OK: no failed request; bench/KIND/rolling_update.json written"
