# Image of the example project (worker and web services of docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=worker.settings \
    PYTHONPATH=/app

WORKDIR /app
COPY . .
# The library with psycopg 3 and the Redis client (the compose services); the
# example project (worker/) is imported from /app, it is not part of the package.
RUN pip install --no-cache-dir -e '.[postgres,redis]'

EXPOSE 8000
CMD ["celery", "-A", "worker", "worker", "-l", "info"]
