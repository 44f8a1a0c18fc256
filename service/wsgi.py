"""gunicorn entry point: `gunicorn -c service/gunicorn.conf.py service.wsgi:app`."""

from __future__ import annotations

import logging
import os

from service import create_app

logging.basicConfig(level=os.environ.get("NBA_LOG_LEVEL", "INFO"),
                    format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
app = create_app()
