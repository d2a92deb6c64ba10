"""A corpus of credential formats for the sensitive-data gate's tests and benchmark.

Every secret here is made up at run time from a seeded random source in the
shape its issuer documents (prefix, alphabet, length), so nothing in the
repository is a live credential and each run of a seed sees the same corpus.
A case is the text a document would hold (the secret with its usual
surroundings: a header, an assignment, a URL) and the parts of it that are
secret: after redaction none of them may remain.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable
from dataclasses import dataclass

UPPER_DIGITS = string.ascii_uppercase + string.digits
ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"
HEX = "0123456789abcdef"


@dataclass(frozen=True)
class SecretCase:
    name: str
    text: str
    secrets: tuple[str, ...]


def _pick(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _b64url(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _pem_body(rng: random.Random, lines: int = 6) -> str:
    return "\n".join(_pick(rng, B64, 64) for _ in range(lines))


def _pem(label: str) -> Callable[[random.Random], SecretCase]:
    def make(rng: random.Random) -> SecretCase:
        body = _pem_body(rng)
        text = f"-----BEGIN {label}-----\n{body}\n-----END {label}-----"
        return SecretCase(label.lower().replace(" ", "_"), text, tuple(body.splitlines()))

    return make


def _token(name: str, shape: Callable[[random.Random], str], around: str = "{}"):
    """A case whose secret is one token, written inside `around`."""

    def make(rng: random.Random) -> SecretCase:
        secret = shape(rng)
        return SecretCase(name, around.format(secret), (secret,))

    return make


def _jwt(rng: random.Random) -> SecretCase:
    header = _b64url({"alg": "HS256", "typ": "JWT"})
    payload = _b64url({"sub": _pick(rng, string.digits, 10), "name": _pick(rng, ALNUM, 8)})
    signature = _pick(rng, URLSAFE, 43)
    token = f"{header}.{payload}.{signature}"
    return SecretCase("jwt", f"session cookie: {token}", (payload, signature))


def _aws_pair(rng: random.Random) -> SecretCase:
    key_id, secret = "AKIA" + _pick(rng, UPPER_DIGITS, 16), _pick(rng, B64, 40)
    text = f"[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}"
    return SecretCase("aws_key_pair_ini", text, (key_id, secret))


def _aws_csv(rng: random.Random) -> SecretCase:
    key_id, secret = "AKIA" + _pick(rng, UPPER_DIGITS, 16), _pick(rng, B64, 40)
    text = f"User name,Access key ID,Secret access key\ndeploy,{key_id},{secret}"
    return SecretCase("aws_credentials_csv", text, (key_id, secret))


def _putty(rng: random.Random) -> SecretCase:
    private = [_pick(rng, B64, 64) for _ in range(3)]
    text = "\n".join(
        [
            "PuTTY-User-Key-File-3: ssh-ed25519",
            "Encryption: none",
            "Comment: deploy",
            "Public-Lines: 1",
            _pick(rng, B64, 64),
            "Private-Lines: 3",
            *private,
            "Private-MAC: " + _pick(rng, HEX, 64),
        ]
    )
    return SecretCase("putty_private_key", text, tuple(private))


def _pgp(rng: random.Random) -> SecretCase:
    body = _pem_body(rng)
    text = (
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n"
        f"{body}\n={_pick(rng, B64, 4)}\n-----END PGP PRIVATE KEY BLOCK-----"
    )
    return SecretCase("pgp_private_key", text, tuple(body.splitlines()))


def _service_account(rng: random.Random) -> SecretCase:
    body = _pem_body(rng, 4)
    pem = "-----BEGIN PRIVATE KEY-----\n" + body + "\n-----END PRIVATE KEY-----\n"
    text = json.dumps(
        {"type": "service_account", "private_key_id": _pick(rng, HEX, 40), "private_key": pem},
        indent=2,
    )
    return SecretCase("gcp_service_account_json", text, tuple(body.splitlines()))


def _password(name: str, around: str) -> Callable[[random.Random], SecretCase]:
    return _token(name, lambda rng: _pick(rng, ALNUM, 6) + _pick(rng, "!#%&*", 1) + "9", around)


def _url_password(name: str, around: str) -> Callable[[random.Random], SecretCase]:
    """In a URL a password's reserved characters are percent-encoded (RFC 3986)."""
    return _token(name, lambda rng: _pick(rng, ALNUM, 6) + "%21" + _pick(rng, "-._~", 1), around)


FORMATS: tuple[Callable[[random.Random], SecretCase], ...] = (
    _token("aws_access_key_id", lambda r: "AKIA" + _pick(r, UPPER_DIGITS, 16)),
    _aws_pair,
    _aws_csv,
    _token("github_classic_pat", lambda r: "ghp_" + _pick(r, ALNUM, 36)),
    _token("github_oauth_token", lambda r: "gho_" + _pick(r, ALNUM, 36)),
    _token("github_fine_grained_pat", lambda r: "github_pat_" + _pick(r, ALNUM + "_", 82)),
    _token("gitlab_pat", lambda r: "glpat-" + _pick(r, URLSAFE, 20)),
    _token(
        "slack_bot_token",
        lambda r: (
            f"xoxb-{_pick(r, string.digits, 12)}-{_pick(r, string.digits, 13)}-"
            + _pick(r, string.ascii_lowercase + string.digits, 24)
        ),
    ),
    _token(
        "slack_webhook",
        lambda r: (
            f"https://hooks.slack.com/services/T{_pick(r, UPPER_DIGITS, 8)}/"
            f"B{_pick(r, UPPER_DIGITS, 10)}/{_pick(r, ALNUM, 24)}"
        ),
    ),
    _token("stripe_secret_key", lambda r: "sk_live_" + _pick(r, ALNUM, 24)),
    _token("stripe_restricted_key", lambda r: "rk_live_" + _pick(r, ALNUM, 24)),
    _token("google_api_key", lambda r: "AIza" + _pick(r, URLSAFE, 35)),
    _token("openai_project_key", lambda r: "sk-proj-" + _pick(r, URLSAFE, 120)),
    _token("anthropic_api_key", lambda r: "sk-ant-api03-" + _pick(r, URLSAFE, 93)),
    _jwt,
    _pem("RSA PRIVATE KEY"),
    _pem("OPENSSH PRIVATE KEY"),
    _pem("EC PRIVATE KEY"),
    _pem("ENCRYPTED PRIVATE KEY"),
    _pgp,
    _putty,
    _service_account,
    _url_password("postgres_url_password", "DATABASE_URL=postgresql://app:{}@db.internal:5432/app"),
    _url_password("mongodb_url_password", 'uri: "mongodb+srv://reader:{}@cluster0.example.net/kb"'),
    _token("bearer_token", lambda r: _pick(r, URLSAFE, 40), "curl -H 'Authorization: Bearer {}'"),
    _token(
        "basic_auth_header",
        lambda r: base64.b64encode(f"admin:{_pick(r, ALNUM, 12)}".encode()).decode(),
        "Authorization: Basic {}",
    ),
    _password("password_assignment_quoted", 'password = "{}"'),
    _password("password_env_variable", "DB_PASSWORD={}"),
    _password("secret_yaml_key", "client_secret: {}"),
    _token("twilio_api_key", lambda r: "SK" + _pick(r, HEX, 32)),
    _token("sendgrid_api_key", lambda r: f"SG.{_pick(r, URLSAFE, 22)}.{_pick(r, URLSAFE, 43)}"),
    _token("npm_token", lambda r: "npm_" + _pick(r, ALNUM, 36)),
    _token("pypi_token", lambda r: "pypi-AgEIcHlwaS5vcmc" + _pick(r, URLSAFE, 70)),
    _token(
        "discord_bot_token",
        lambda r: f"M{_pick(r, URLSAFE, 23)}.{_pick(r, URLSAFE, 6)}.{_pick(r, URLSAFE, 27)}",
    ),
    _token(
        "telegram_bot_token", lambda r: f"{_pick(r, string.digits, 10)}:{_pick(r, URLSAFE, 35)}"
    ),
    _token("mailchimp_api_key", lambda r: f"{_pick(r, HEX, 32)}-us{r.randint(1, 20)}"),
    _token("square_oauth_secret", lambda r: "sq0csp-" + _pick(r, URLSAFE, 43)),
    _token(
        "azure_storage_connection",
        lambda r: _pick(r, B64, 86) + "==",
        "DefaultEndpointsProtocol=https;AccountName=kb;AccountKey={};EndpointSuffix=core.windows.net",
    ),
    _token("hugging_face_token", lambda r: "hf_" + _pick(r, ALNUM, 34)),
    _token("shopify_access_token", lambda r: "shpat_" + _pick(r, HEX, 32)),
    _token("digitalocean_token", lambda r: "dop_v1_" + _pick(r, HEX, 64)),
    _token("vault_token", lambda r: "hvs." + _pick(r, URLSAFE, 90)),
    _token("databricks_token", lambda r: "dapi" + _pick(r, HEX, 32)),
    _token(
        "age_secret_key",
        lambda r: "AGE-SECRET-KEY-1" + _pick(r, "023456789ACDEFGHJKLMNPQRSTUVWXYZ", 58),
    ),
    _token("artifactory_api_key", lambda r: "AKC" + _pick(r, ALNUM, 70)),
)

# How a document holds a snippet: on its own, in prose, in a code block, in a table.
CONTEXTS: dict[str, str] = {
    "bare": "{}",
    "prose": "For the staging box the deploy job uses the following.\n{}\nRotate it monthly.",
    "fenced": "Configuration:\n\n```\n{}\n```\n",
    "quoted": "> {}",
}


def corpus(seed: int = 0, per_format: int = 3) -> list[tuple[str, SecretCase]]:
    """(context name, case) for every format, context and repetition."""
    rng = random.Random(seed)
    return [
        (context, SecretCase(case.name, around.format(case.text), case.secrets))
        for make in FORMATS
        for _ in range(per_format)
        for context, around in CONTEXTS.items()
        for case in [make(rng)]
    ]
