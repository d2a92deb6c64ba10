"""E-mail (.eml, RFC 5322) through the standard library's parser.

Subject, sender and date are the document's metadata (and the subject its
title); the body is the plain-text part, else the HTML one; text attachments
(plain, Markdown, CSV, HTML) follow as sections of their own. Other
attachments are named in the parse notes, not read.
"""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from typing import Any

from rag_ingest.parsing.base import ParsedDocument, ParseError, file_stem, normalise_text
from rag_ingest.parsing.context import ParseContext
from rag_ingest.parsing.xhtml import html_blocks

_TEXT_TYPES = ("text/plain", "text/markdown", "text/csv", "text/x-rst", "text/html")


def parse_eml(relative_path: str, data: bytes, context: ParseContext) -> ParsedDocument:
    message = email.message_from_bytes(data, policy=email.policy.default)
    if not isinstance(message, EmailMessage) or not (message.keys() or message.get_payload()):
        raise ParseError("invalid_email", "no e-mail headers or body found")
    metadata: dict[str, object] = {
        name: " ".join(str(message[header]).split())
        for name, header in (("subject", "Subject"), ("from", "From"), ("date", "Date"))
        if message[header] is not None
    }
    blocks: list[str] = []
    body = message.get_body(preferencelist=("plain", "html"))
    if body is not None:
        blocks.extend(_part_blocks(body))
    if not blocks:  # no body by the standard rules (a malformed boundary or type):
        blocks.extend(_any_text(message))  # every text part there is, else the raw payload
    skipped = []
    for attachment in message.iter_attachments():
        name = attachment.get_filename() or attachment.get_content_type()
        if attachment.get_content_type() in _TEXT_TYPES:
            blocks.append(f"## Attachment: {name}")
            blocks.extend(_part_blocks(attachment))
        else:
            skipped.append(name)
    notes: dict[str, object] = {"attachments_not_read": skipped[:20]} if skipped else {}
    return ParsedDocument(
        title=str(metadata.get("subject") or file_stem(relative_path)),
        text=normalise_text("\n\n".join(blocks)),
        format="email",
        metadata=metadata,
        notes=notes,
    )


def _part_blocks(part: Any) -> list[str]:
    try:
        content = part.get_content()
    except (LookupError, ValueError, AssertionError):  # unknown charset, bad encoding
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if isinstance(content, bytes):
        content = content.decode("utf-8", "replace")
    if part.get_content_type() == "text/html":
        return html_blocks(content)[0]
    return [content]


def _any_text(message: EmailMessage) -> list[str]:
    blocks = []
    for part in message.walk():
        if part.get_content_maintype() == "text" and not part.is_attachment():
            blocks.extend(_part_blocks(part))
    payload = message.get_payload()
    if not any(block.strip() for block in blocks) and isinstance(payload, str):
        looks_like_html = "<html" in payload[:2000].lower() or "<body" in payload[:2000].lower()
        blocks = html_blocks(payload)[0] if looks_like_html else [payload]
    return blocks
