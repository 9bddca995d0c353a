from django.apps import AppConfig


class NotifyConfig(AppConfig):
    name = "notify"
    verbose_name = "Notify: e-mail and signed webhooks for account events"
    default_auto_field = "django.db.models.BigAutoField"
