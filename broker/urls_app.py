from django.urls import URLPattern, URLResolver

app_name = "app"

urlpatterns: list[URLPattern | URLResolver] = []
