"""The image trust-store check tells a bundle holding a CA from one that does not."""

from __future__ import annotations

from pathlib import Path

import certifi

from classifier.testing.trust_store import certificates, unexpected

BUNDLE = Path(certifi.where()).read_bytes()


def test_a_certificate_is_found_whatever_its_line_breaks():
    first = BUNDLE[: BUNDLE.index(b"-----END CERTIFICATE-----") + 25]
    reflowed = first.replace(b"\n", b"\r\n")
    assert certificates(reflowed) == certificates(first)
    assert len(certificates(first)) == 1 and certificates(first) < certificates(BUNDLE)


def test_absent_and_present_are_told_apart(tmp_path):
    blocks = BUNDLE.split(b"-----END CERTIFICATE-----")[:3]
    (tmp_path / "proxy.crt").write_bytes(blocks[0] + b"-----END CERTIFICATE-----\n")
    files = [tmp_path / "proxy.crt"]
    with_proxy = certificates(BUNDLE)
    without = with_proxy - certificates(files[0].read_bytes())
    assert unexpected(without, files, expect_present=False) == []
    assert unexpected(with_proxy, files, expect_present=True) == []
    assert unexpected(with_proxy, files, expect_present=False) == [f"{files[0]}: trusted"]
    assert unexpected(without, files, expect_present=True) == [f"{files[0]}: not trusted"]
