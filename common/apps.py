from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "common"
    verbose_name = "Common: API tokens, errors, money"

    def ready(self) -> None:
        from common import lockout  # noqa: F401 — connects the failed-login signal receivers
        from common.logging import celery_signals_connect

        celery_signals_connect()
