# One image for web, worker and beat: they differ only by command (see docker-compose.yml).
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DJANGO_SETTINGS_MODULE=config.settings \
    RIGSHIFT_VAR_DIR=/app/var

WORKDIR /app
COPY requirements.txt ./
RUN pip install -r requirements.txt
COPY . .
RUN pip install ./agent \
    && useradd --create-home --uid 10001 rigshift \
    && mkdir -p /app/var \
    && DJANGO_DEBUG=0 SECRET_KEY=build-only-collectstatic ALLOWED_HOSTS=localhost python manage.py collectstatic --noinput \
    && chown -R rigshift:rigshift /app/var /app/staticfiles
USER rigshift
EXPOSE 8000
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
