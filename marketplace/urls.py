from django.urls import URLPattern, URLResolver

app_name = "provider"

urlpatterns: list[URLPattern | URLResolver] = []
