#!/usr/bin/env bash
# `bentoml containerize` with buildah, trusting what this machine trusts while it builds:
#   bash scripts/containerize.sh BENTO IMAGE        e.g. image-classifier:latest localhost/image-classifier:1
# Behind a TLS-intercepting proxy (a corporate network), the build's downloads (`pip install uv`,
# the Python packages) fail with CERTIFICATE_VERIFY_FAILED unless the build trusts the proxy's CA,
# as this machine does. This lends the build this machine's CA bundle: an overlay mount over
# /etc/ssl/certs for each build step: apt may write to it (its writes succeed, then are thrown
# away), and it never becomes part of the image, which keeps its own trust store.
# To make the image itself trust extra CAs, build its base with them (EXTRA_CA_CERTS in
# scripts/base-image.sh). Other `bentoml containerize` options go after IMAGE.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ $# -ge 2 ] || { echo "usage: bash scripts/containerize.sh BENTO IMAGE [bentoml containerize options]" >&2; exit 2; }
bento=$1 image=$2
shift 2

# the bundle this machine's Python trusts (SSL_CERT_FILE if set, else OpenSSL's default)
bundle=$(python3 -c "import os, ssl; print(os.environ.get('SSL_CERT_FILE') or ssl.get_default_verify_paths().openssl_cafile)")
[ -s "$bundle" ] || { echo "no CA bundle at $bundle: set SSL_CERT_FILE" >&2; exit 1; }
lent=$(mktemp -d)
trap 'rm -rf "$lent"' EXIT
cp "$bundle" "$lent/ca-certificates.crt"
chmod -R a+rX "$lent"
# /etc/ssl/certs/ca-certificates.crt: where Debian's (and so python:3.11-slim's) OpenSSL, pip and
# uv (SSL_CERT_FILE, set by the base image) look
bentoml containerize "$bento" --backend buildah -t "$image" \
  --opt volume="$lent:/etc/ssl/certs:O" "$@"
