"""The floor app's own settings: the panel's database and production flags from the same
environment, no middleware, only the apps whose tables it reads.

(Not `from panel.settings import *`: importing the panel package loads its Celery app,
which reads these very settings.)"""

import environ

env = environ.Env()

DEBUG: bool = env.bool("DEBUG", default=False)
SECRET_KEY: str = env.str("SECRET_KEY")
ALLOWED_HOSTS: list[str] = env.list("ALLOWED_HOSTS", default=["127.0.0.1"])
# The same connection handling as the panel (panel/settings.py), so both pay alike for it.
DATABASES = {"default": {**env.db_url("DATABASE_URL"), "CONN_MAX_AGE": 60,
                         "CONN_HEALTH_CHECKS": True}}
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "bench.floor_app.apps.PanelTables",
    "providers",
    "orders",
]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "bench.floor_app.urls"
WSGI_APPLICATION = "bench.floor_app.wsgi.application"
AUTH_USER_MODEL = "panel.User"
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
FIELD_ENCRYPTION_KEYS: list[str] = env.str("FIELD_ENCRYPTION_KEY").split(",")
# Read when the panel package loads its Celery app (panel/celery.py); the floor sends nothing.
CELERY_BROKER_URL = "memory://"
SWEEP_INTERVAL = CATALOG_SYNC_INTERVAL = BALANCE_CHECK_INTERVAL = 3600
LOGGING_CONFIG = None
