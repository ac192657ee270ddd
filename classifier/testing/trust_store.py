"""Which certificate authorities an image trusts, compared with a folder of certificates.

It shows that a build borrowed this machine's CAs only while it built (scripts/containerize.sh),
unless the image was made to keep them (EXTRA_CA_CERTS).

    python -m classifier.testing.trust_store IMAGE                  # this machine's own CAs: absent
    python -m classifier.testing.trust_store IMAGE --certificates DIR --expect present
"""

from __future__ import annotations

import argparse
import base64
import re
import subprocess
import sys
from pathlib import Path

# Debian's bundle, what OpenSSL, pip and uv in the image read
IMAGE_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# where Debian keeps a machine's own CAs (a TLS-intercepting proxy's, a company's)
LOCAL_CERTIFICATES = Path("/usr/local/share/ca-certificates")
PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)


def certificates(pem: bytes) -> set[bytes]:
    """The DER bytes of each certificate in PEM text: the same certificate whatever its layout."""
    return {base64.b64decode(b"".join(body.split())) for body in PEM_CERTIFICATE.findall(pem)}


def image_bundle(image: str) -> bytes:
    command = [
        "podman",
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "cat",
        image,
        IMAGE_BUNDLE,
    ]
    return subprocess.run(command, check=True, capture_output=True).stdout


def unexpected(trusted: set[bytes], files: list[Path], expect_present: bool) -> list[str]:
    """The files whose certificates the trust store holds when they should be absent, or lacks."""
    return [
        f"{path}: {'not trusted' if expect_present else 'trusted'}"
        for path in files
        if (certificates(path.read_bytes()) <= trusted) != expect_present
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image")
    parser.add_argument(
        "--certificates", type=Path, default=LOCAL_CERTIFICATES, help="a folder of *.crt"
    )
    parser.add_argument("--expect", choices=["absent", "present"], default="absent")
    args = parser.parse_args(argv)
    files = sorted(args.certificates.glob("*.crt"))
    trusted = certificates(image_bundle(args.image))
    if not files and args.expect == "present":
        sys.exit(f"no *.crt in {args.certificates}: nothing the image could be asked to trust")
    if not files:
        print(
            f"no *.crt in {args.certificates}: nothing to check ({len(trusted)} CAs in the image)"
        )
        return
    wrong = unexpected(trusted, files, args.expect == "present")
    if wrong:
        sys.exit(f"{args.image}'s trust store, {IMAGE_BUNDLE}: " + "; ".join(wrong))
    names = ", ".join(path.name for path in files)
    print(f"{args.image} trusts {len(trusted)} CAs; {names}: {args.expect}, as expected")


if __name__ == "__main__":
    main()
