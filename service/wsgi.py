"""gunicorn entry point: `gunicorn -c service/gunicorn.conf.py service.wsgi:app`."""

from __future__ import annotations

import os

from service import create_app
from service.observability import configure_logging
from service.redact import Redactor, install_log_redaction
from service.settings import ServiceSettings

settings = ServiceSettings.from_env()
# one JSON object per line (NBA_LOG_FORMAT=text for plain lines); no password in any line
configure_logging(os.environ.get("NBA_LOG_LEVEL", "INFO"),
                  json_logs=os.environ.get("NBA_LOG_FORMAT", "json").strip().lower() == "json")
install_log_redaction(Redactor(settings.secret_urls))
app = create_app(settings)
