"""gunicorn entry point: `gunicorn -c service/gunicorn.conf.py service.wsgi:app`."""

from __future__ import annotations

import os

from service import create_app
from service.observability import configure_logging

# one JSON object per line (NBA_LOG_FORMAT=text for plain lines)
configure_logging(os.environ.get("NBA_LOG_LEVEL", "INFO"),
                  json_logs=os.environ.get("NBA_LOG_FORMAT", "json").strip().lower() == "json")
app = create_app()
