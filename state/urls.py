"""State store URLs: the default, and how one is shown (no SQLAlchemy: the CLI reads these
before it parses its flags)."""

from __future__ import annotations

import re

DEFAULT_URL = "sqlite:///state.db"


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, safe to log and show."""
    url = re.sub(r"(://[^/@:]*:)[^@/]*@", r"\1***@", url)
    return re.sub(r"(?i)(password=)[^&]*", r"\1***", url)
