"""The sensitive-data gate: find personal data and secrets in parsed text.

Detectors, each named in `sensitive_data.detect`:

- `email`: addresses (a plain pattern; quoted local parts are not looked for).
- `phone`: numbers that libphonenumber (the `phonenumbers` port) finds and
  judges valid for one of `phone_regions`, so dates, ranges and figures in
  text are not taken for phone numbers.
- `payment_card`: 13 to 19 digits (spaces or dashes allowed) with a known
  card-network prefix that pass the Luhn checksum; a random number passes
  Luhn one time in ten, the prefix rules most of the rest out.
- `api_key`: credentials: API keys and tokens in the formats their issuers
  publish, JWTs, passwords in URLs and in `password = ...` assignments,
  bearer tokens (rag_ingest.credentials: detect-secrets' rules and more).
- `private_key`: private-key blocks (PEM, OpenSSH, PGP, SSH2, PuTTY),
  header to footer.

Findings are counted per kind and never carry the matched text: they go to
logs and reports, which must not repeat a secret.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from rag_ingest.credentials import credential_spans, private_key_spans

KINDS = ("email", "phone", "payment_card", "api_key", "private_key")

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"
)
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _card_network(digits: str) -> bool:
    """Lengths and prefixes of the major networks (their published IIN ranges)."""
    n, two, four = len(digits), int(digits[:2]), int(digits[:4])
    six = int(digits[:6])
    return (
        (digits[0] == "4" and n in (13, 16, 19))  # Visa
        or ((51 <= two <= 55 or 2221 <= four <= 2720) and n == 16)  # Mastercard
        or (two in (34, 37) and n == 15)  # American Express
        or ((four == 6011 or two == 65 or 644 <= int(digits[:3]) <= 649) and n in (16, 19))
        or (622126 <= six <= 622925 and n in (16, 19))  # Discover, UnionPay co-branded
        or (3528 <= four <= 3589 and n in (16, 19))  # JCB
        or (two in (36, 38, 39) and n == 14)  # Diners Club
    )


@dataclass(frozen=True)
class Span:
    kind: str
    start: int
    end: int


class Scanner:
    def __init__(self, detect: Iterable[str], phone_regions: Iterable[str] = ("US",)) -> None:
        self.detect = tuple(detect)
        unknown = sorted(set(self.detect) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown detectors {unknown}; known: {', '.join(KINDS)}")
        self.phone_regions = tuple(phone_regions)

    def spans(self, text: str) -> list[Span]:
        """Every finding, earliest first; overlapping findings keep the first and longest."""
        found = sorted(self._all(text), key=lambda s: (s.start, -(s.end - s.start)))
        kept: list[Span] = []
        for span in found:
            if kept and span.start < kept[-1].end:
                continue
            kept.append(span)
        return kept

    def _all(self, text: str) -> Iterator[Span]:
        if "private_key" in self.detect:
            yield from (Span("private_key", *span) for span in private_key_spans(text))
        if "api_key" in self.detect:
            yield from (Span("api_key", *span) for span in credential_spans(text))
        if "email" in self.detect:
            yield from (Span("email", *m.span()) for m in _EMAIL.finditer(text))
        if "payment_card" in self.detect:
            for match in _CARD.finditer(text):
                digits = re.sub(r"[ -]", "", match.group())
                if 13 <= len(digits) <= 19 and _card_network(digits) and luhn_valid(digits):
                    yield Span("payment_card", *match.span())
        if "phone" in self.detect:
            import phonenumbers

            for region in self.phone_regions:
                matcher = phonenumbers.PhoneNumberMatcher(
                    text, region, leniency=phonenumbers.Leniency.VALID
                )
                yield from (Span("phone", m.start, m.end) for m in matcher)

    def count(self, text: str) -> dict[str, int]:
        return dict(Counter(span.kind for span in self.spans(text)))

    def redact(self, text: str) -> tuple[str, dict[str, int]]:
        """The text with every finding replaced by `[REDACTED:<kind>]`, and the counts."""
        spans = self.spans(text)
        parts, cursor = [], 0
        for span in spans:
            parts.append(text[cursor : span.start])
            parts.append(f"[REDACTED:{span.kind}]")
            cursor = span.end
        parts.append(text[cursor:])
        return "".join(parts), dict(Counter(span.kind for span in spans))


def describe(counts: dict[str, int]) -> str:
    """'2 email, 1 private_key': what was found, never the text itself."""
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
