"""The sensitive-data detectors: planted findings, near misses, redaction."""

from __future__ import annotations

import pytest

from rag_ingest.sensitive import KINDS, Scanner, describe, luhn_valid

# Published test numbers of the card networks (they pass Luhn; no real account).
VISA = "4111 1111 1111 1111"
AMEX = "3782-822463-10005"
PRIVATE_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq9\nabcDEF123==\n"
    "-----END RSA PRIVATE KEY-----"
)
AWS = "AKIAIOSFODNN7EXAMPLE"  # AWS's documented example key id
GITHUB = "ghp_" + "a1B2c3D4" * 5


def test_luhn_checksum() -> None:
    assert luhn_valid("4111111111111111") and luhn_valid("378282246310005")
    assert not luhn_valid("4111111111111112")


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("email", "write to jane.doe+kb@example.co.uk for access"),
        ("phone", "call +1 650-253-0000 or (212) 555-0187 today"),
        ("payment_card", f"card {VISA} and {AMEX} on file"),
        ("api_key", f"export AWS_KEY={AWS}; token {GITHUB}"),
        ("api_key", 'config: api_key = "Zx8Qw2Lm9Rt5Yu1Io3Pa7Sd"'),
        ("private_key", f"the key:\n{PRIVATE_KEY}\nend"),
    ],
    ids=["email", "phone", "card", "key-formats", "key-assignment", "pem"],
)
def test_each_detector_finds_what_is_planted(kind: str, text: str) -> None:
    counts = Scanner(KINDS).count(text)
    assert set(counts) == {kind} and counts[kind] >= 1


@pytest.mark.parametrize(
    "text",
    [
        "trial 2013-2015, 95% CI 1.2-3.4, p < 0.001, n = 1234567",  # figures, not phones
        "order number 4111 1111 1111 1112 failed",  # a card-like number failing Luhn
        "serial 1234 5678 9012 3456 shipped",  # passes no network prefix rule
        "the PUBLIC KEY block -----BEGIN PUBLIC KEY----- is fine",
        "api_key = short",  # too short to be a secret
        "user@localhost is not an address on the internet",
    ],
    ids=["figures", "luhn-fail", "no-network", "public-key", "short-value", "no-domain"],
)
def test_near_misses_are_not_findings(text: str) -> None:
    assert Scanner(KINDS).count(text) == {}


def test_redaction_replaces_each_finding_and_reports_counts_only() -> None:
    text = f"Pay with {VISA}, mail jane@example.com, key {AWS}."
    redacted, counts = Scanner(["payment_card", "email", "api_key"]).redact(text)
    assert redacted == (
        "Pay with [REDACTED:payment_card], mail [REDACTED:email], key [REDACTED:api_key]."
    )
    assert counts == {"payment_card": 1, "email": 1, "api_key": 1}
    assert describe(counts) == "1 api_key, 1 email, 1 payment_card"
    # Only the enabled detectors run.
    assert Scanner(["api_key"]).count(text) == {"api_key": 1}
    with pytest.raises(ValueError, match="unknown detectors"):
        Scanner(["ssn"])
