"""ASGI entry point for production servers (granian, uvicorn): ``smsgw.asgi:create``.

This is a process entry point, so it is where the environment is read.
"""

from __future__ import annotations

import os

from litestar import Litestar

from app.factory import create_app
from core import logs
from core.settings import Settings
from smsgw.gc_tuning import freeze_startup_objects


def create() -> Litestar:
    settings = Settings.from_env(os.environ)
    logs.configure(json=settings.log_json, level=settings.log_level)
    app = create_app(settings)
    freeze_startup_objects()
    return app
