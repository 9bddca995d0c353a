"""Django setup for benchmark commands: the configured DATABASE_URL (settings), never the test settings."""

import os

import django


def setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
