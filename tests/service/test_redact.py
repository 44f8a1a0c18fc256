"""What the log redaction masks in any line."""

from __future__ import annotations

import pytest

from service.redact import Redactor


@pytest.mark.parametrize(("line", "clean"), [
    ('"POST /v1/decisions?api_key=sf-0123456789abcdef HTTP/1.0" 401',
     '"POST /v1/decisions?api_key=[redacted] HTTP/1.0" 401'),
    ("GET /staff?store_id=s1&token=abc123 HTTP/1.1",
     "GET /staff?store_id=s1&token=[redacted] HTTP/1.1"),
    ("Authorization: Bearer abc123", "Authorization: Bearer [redacted]"),
    ("GET /cb?client_secret=s3&refresh_token=r-1&id_token=eyJ.x HTTP/1.1",
     "GET /cb?client_secret=[redacted]&refresh_token=[redacted]&id_token=[redacted] HTTP/1.1"),
    ("GET /x?X-Amz-Credential=AK%2F1&X-Amz-Signature=ab12&db_passwd=pw",
     "GET /x?X-Amz-Credential=[redacted]&X-Amz-Signature=[redacted]&db_passwd=[redacted]"),
    # the service's own parameters, and ids that merely end in a word, pass
    ("GET /v1/reports/incrementality?by=offer&since=2026-01-01",
     "GET /v1/reports/incrementality?by=offer&since=2026-01-01"),
    ("GET /staff/stock?store_id=s1&sku=SKU-1&customer_id=C1&limit=3",
     "GET /staff/stock?store_id=s1&sku=SKU-1&customer_id=C1&limit=3"),
])
def test_a_key_in_a_query_string_or_header_is_masked(line, clean):
    """A client's ?api_key=... reached the access log verbatim."""
    assert Redactor().secret_free(line) == clean
