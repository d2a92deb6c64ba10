"""Where credentials and private keys are in a text (the `api_key` and `private_key` detectors).

The rules are detect-secrets' own (Yelp's secret scanner): every built-in
regex detector (AWS, Azure, GitHub, GitLab, Slack, Stripe, Twilio, JWT, basic
auth in URLs, ...) and its keyword detector (`password = ...`, in quoted and
config-file forms), with its heuristic filters for templated and indirect
values. Its two entropy detectors are left out: on the SciFact corpus they
flag about 4% of plain scientific abstracts (`drug-like`, `on-plate`).

`EXTRA_RULES` adds the formats detect-secrets 1.5 does not know, each taken
from its issuer's published token format; see docs/reliability.md for the
corpus and the benchmark that measure the whole set.

detect-secrets works line by line and yields the secret's text; here each
rule runs over the whole text and yields spans, so a finding can be
redacted in place.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache

from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.filters import heuristic
from detect_secrets.plugins.base import BasePlugin, RegexBasedDetector
from detect_secrets.plugins.high_entropy_strings import HighEntropyStringsPlugin
from detect_secrets.plugins.ip_public import IPPublicDetector
from detect_secrets.plugins.keyword import (
    CONFIG_DENYLIST_REGEX_TO_GROUP,
    DENYLIST,
    QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP,
)
from detect_secrets.plugins.private_key import PrivateKeyDetector

Span = tuple[int, int]

# Token formats detect-secrets 1.5 lacks, from each issuer's documentation.
# A group, where there is one, is the secret; otherwise the whole match is.
EXTRA_RULES: dict[str, re.Pattern[str]] = {
    "google_api_key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}"),
    "github_fine_grained_pat": re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}"),
    "openai_or_anthropic_key": re.compile(
        r"\bsk-(?:proj-|svcacct-|admin-|ant-)?[A-Za-z0-9_-]{32,}"
    ),
    "hugging_face_token": re.compile(r"\bhf_[A-Za-z0-9]{30,}"),
    "npm_token": re.compile(r"\bnpm_[A-Za-z0-9]{36}\b"),
    "shopify_token": re.compile(r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b"),
    "databricks_token": re.compile(r"\bdapi[a-f0-9]{32}(?:-\d)?\b"),
    "digitalocean_token": re.compile(r"\bdo[por]_v1_[a-f0-9]{64}\b"),
    "vault_token": re.compile(r"\bhv[sbr]\.[A-Za-z0-9_-]{24,}"),
    "age_secret_key": re.compile(r"\bAGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}\b"),
    "postman_api_key": re.compile(r"\bPMAK-[a-f0-9]{24}-[a-f0-9]{34}\b"),
    "atlassian_api_token": re.compile(r"\bATATT3[A-Za-z0-9_\-=]{100,}"),
    "linear_api_key": re.compile(r"\blin_api_[A-Za-z0-9]{40}\b"),
    "doppler_token": re.compile(r"\bdp\.(?:pt|st|sa|ct)\.[A-Za-z0-9]{40,}"),
    "grafana_token": re.compile(r"\bgl(?:sa|c)_[A-Za-z0-9_+/=]{32,}"),
    "new_relic_key": re.compile(r"\bNRA[KA]-[A-Z0-9]{27}\b"),
    "mailgun_key": re.compile(r"\bkey-[0-9a-f]{32}\b"),
    "slack_app_token": re.compile(r"\bxapp-\d-[A-Z0-9]+-\d+-[a-f0-9]{32,}"),
    # An AWS secret access key is 40 base64 characters; beside a key id it needs no label.
    "aws_secret_beside_key_id": re.compile(
        r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b[^\n]{0,100}?\n?[^\n]{0,100}?"
        r"(?<![A-Za-z0-9/+])([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
    ),
    # HTTP authorisation headers and token assignments detect-secrets' keywords miss.
    "authorization_header": re.compile(
        r"(?i:\b(?:bearer|basic|token)\s+)([A-Za-z0-9_\-.~+/]{20,}=*)"
    ),
    "token_assignment": re.compile(
        r"(?i:\b\w*(?:token|bearer|credential)\w*['\"]?\s*[:=]\s*['\"]?)"
        r"([A-Za-z0-9_\-./+=]{20,})"
    ),
}

# Headers detect-secrets 1.5 lacks: PKCS#8 encrypted (any `BEGIN ... PRIVATE KEY`), PuTTY v3.
_EXTRA_KEY_HEADERS = (
    re.compile(r"BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY"),
    re.compile(r"PuTTY-User-Key-File-\d+:"),
)
# Where a private-key block ends: a PEM or SSH2 footer, or PuTTY's MAC line.
_KEY_FOOTER = re.compile(r"-{4,5} ?END [^\n]*?PRIVATE KEY[^\n]*|Private-MAC: *\S+")
# Every rule's secret is a token of 16 characters or more that is not a plain
# word (it has a digit, an inner capital, `_`, `/`, `+` or `=`), or sits in a URL.
_ANCHOR = re.compile(
    r"://|(?=[A-Za-z0-9_\-+/=.:]{16,})[A-Za-z0-9_\-+/=.:]*?"
    r"(?:\d|(?<=[A-Za-z0-9])[A-Z]|[_/+=])[A-Za-z0-9_\-+/=.:]*"
)
_CONTEXT_BEFORE = 240  # an AWS key id may stand this far before its secret
_CONTEXT_AFTER = 240
_KEYWORD_VALUE_MAX = 400  # how far past its keyword a value is looked for
# Each keyword of detect-secrets' list holds one of these (`db_pass`, `api_key`, ...).
_KEYWORD_STEMS = ("key", "pass", "pwd", "secret", "contrase")
# A token's characters; a token does not end in a full stop (the sentence's).
_TOKEN_TAIL = re.compile(r"(?:[A-Za-z0-9_\-+/=]|\.(?=[A-Za-z0-9_\-+/=]))*")
# A keyword's value shorter than this is a placeholder or a word, not a password.
MIN_KEYWORD_VALUE = 6


if not all(any(stem in word for stem in _KEYWORD_STEMS) for word in DENYLIST):
    # A newer detect-secrets keyword without a stem here would never be looked for.
    raise ImportError(f"detect-secrets keywords {DENYLIST} outgrew {_KEYWORD_STEMS}")


@cache
def _regex_detectors() -> tuple[RegexBasedDetector, ...]:
    """detect-secrets' built-in regex detectors, less the noisy and the private-key one."""
    skipped = (HighEntropyStringsPlugin, IPPublicDetector, PrivateKeyDetector)
    detectors: list[RegexBasedDetector] = []
    plugin_classes: list[type[BasePlugin]] = list(get_mapping_from_secret_type_to_class().values())
    for plugin_class in plugin_classes:
        if (
            plugin_class.__module__.startswith("detect_secrets.plugins.")
            and issubclass(plugin_class, RegexBasedDetector)
            and not issubclass(plugin_class, skipped)
        ):
            detectors.append(plugin_class())
    return tuple(detectors)


def _secret_span(match: re.Match[str]) -> Span:
    """The span of the match's groups that matched (the secret), or of the whole match."""
    groups = [i for i in range(1, (match.re.groups or 0) + 1) if match.group(i)]
    if not groups:
        return match.span()
    return min(match.start(i) for i in groups), max(match.end(i) for i in groups)


def _validated(plugin: BasePlugin, candidate: str) -> bool:
    """A detector with its own checks (a JWT's parts must decode) must accept the candidate."""
    if type(plugin).analyze_string is RegexBasedDetector.analyze_string:
        return True
    return any(True for _ in plugin.analyze_string(candidate))


def _merged(windows: Iterator[Span]) -> Iterator[Span]:
    """Overlapping or touching windows (in start order) as one."""
    current: Span | None = None
    for start, end in windows:
        if current and start <= current[1]:
            current = (current[0], max(current[1], end))
            continue
        if current:
            yield current
        current = (start, end)
    if current:
        yield current


def _around(text: str, start: int, end: int, before: int, after: int) -> Span:
    """From `before` characters ahead of start to `after` past end, within end's line."""
    line_end = text.find("\n", end)
    stop = min(len(text), end + after)
    return max(0, start - before), min(stop, line_end + 1) if line_end != -1 else stop


def _windows(text: str) -> Iterator[Span]:
    """Where a rule could match: around each long token with a digit, capital or
    underscore inside it, and each URL's `://`. Prose has few such tokens, so the
    rules run over a fraction of the text (7% of SciFact's)."""
    anchors = (
        _around(text, *found.span(), _CONTEXT_BEFORE, _CONTEXT_AFTER)
        for found in _ANCHOR.finditer(text)
    )
    return _merged(anchors)


def _rule_spans(text: str) -> Iterator[Span]:
    for window_start, window_end in _windows(text):
        yield from _rule_spans_in(text, window_start, window_end)


def _rule_spans_in(text: str, pos: int, endpos: int) -> Iterator[Span]:
    for plugin in _regex_detectors():
        for regex in plugin.denylist:
            for match in regex.finditer(text, pos, endpos):
                start, end = _secret_span(match)
                # A token's tail after a lazy pattern (a JWT's signature) is part of it.
                tail = _TOKEN_TAIL.match(text, end)
                end = tail.end() if tail else end
                if _validated(plugin, text[match.start() : end]):
                    yield start, end
    for regex in EXTRA_RULES.values():
        yield from (_secret_span(match) for match in regex.finditer(text, pos, endpos))


def _is_placeholder(value: str, line: str) -> bool:
    return (
        len(value.strip()) < MIN_KEYWORD_VALUE
        or heuristic.is_templated_secret(value)
        or heuristic.is_prefixed_with_dollar_sign(value)
        or heuristic.is_not_alphanumeric_string(value)
        or heuristic.is_sequential_string(value)
        or heuristic.is_indirect_reference(line)
    )


def _keyword_windows(text: str) -> Iterator[Span]:
    """Around each keyword stem, within its line as detect-secrets scans (str.find:
    a regex tried at every position is ten times slower here)."""
    lowered = text.lower()
    found: list[int] = []
    for stem in _KEYWORD_STEMS:
        at = lowered.find(stem)
        while at != -1:
            found.append(at)
            at = lowered.find(stem, at + 1)
    found.sort()
    return _merged(_in_line(text, at, _CONTEXT_BEFORE, _KEYWORD_VALUE_MAX) for at in found)


def _in_line(text: str, at: int, before: int, after: int) -> Span:
    line_start = text.rfind("\n", 0, at) + 1
    line_end = text.find("\n", at)
    line_end = len(text) if line_end == -1 else line_end
    return max(line_start, at - before), min(line_end, at + after)


def _keyword_spans(text: str) -> Iterator[Span]:
    """detect-secrets' keyword rules (quoted and config-file forms)."""
    for pos, endpos in _keyword_windows(text):
        line = text[pos:endpos]
        for rules in (QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP, CONFIG_DENYLIST_REGEX_TO_GROUP):
            for regex, group in rules.items():
                for match in regex.finditer(line):
                    if not _is_placeholder(match.group(group), line):
                        yield pos + match.start(group), pos + match.end(group)


def credential_spans(text: str) -> Iterator[Span]:
    """Every API key, token or password found in the text (spans may overlap)."""
    yield from _rule_spans(text)
    yield from _keyword_spans(text)


def private_key_spans(text: str) -> Iterator[Span]:
    """Each private-key block, from its header to its footer (or the text's end)."""
    for regex in (*PrivateKeyDetector.denylist, *_EXTRA_KEY_HEADERS):
        for header in regex.finditer(text):
            start = header.start()
            while start > 0 and text[start - 1] in "- ":  # the header's own dashes
                start -= 1
            footer = _KEY_FOOTER.search(text, header.end())
            yield start, footer.end() if footer else len(text)
