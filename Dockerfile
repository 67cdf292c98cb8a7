# The production image: gunicorn serves the panel; the same image runs the Celery worker and beat.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DEBUG=false

WORKDIR /app
COPY pyproject.toml ./
RUN pip install --no-cache-dir . && rm -rf build *.egg-info
COPY . .
# collectstatic needs settings but no secrets that matter: use throwaway values at build time.
RUN SECRET_KEY=build-only FIELD_ENCRYPTION_KEY=ZGV2LW9ubHktZmllbGQta2V5LWRvLW5vdC11c2UhISE= \
    DATABASE_URL=postgres://build@localhost/build python manage.py collectstatic --noinput \
    && useradd --system --home /app panel && mkdir -p /app/var && chown -R panel /app/var
USER panel
EXPOSE 8000
# gunicorn.conf.py: bind, workers, and an access log that never records query strings.
CMD ["gunicorn", "--config", "gunicorn.conf.py", "panel.wsgi:application"]
