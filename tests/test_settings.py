"""Settings load in development and production modes, and production refuses to start
without its secrets. Each case runs in a fresh interpreter, as a real start-up would."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent
PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "k" * 20 + "-production-secret-with-enough-entropy-0123456789",
    "FIELD_ENCRYPTION_KEY": "ZGV2LW9ubHktZmllbGQta2V5LWRvLW5vdC11c2UhISE=",
    "DATABASE_URL": "postgres://panel:secret@db.internal:5432/panel",
    "REDIS_URL": "redis://redis.internal:6379/0",
    "ALLOWED_HOSTS": "panel.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://panel.example.com",
    "EMAIL_URL": "smtp+tls://mailer:secret@smtp.example.com:587",
}
_DUMP = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'DEBUG': s.DEBUG, 'db': s.DATABASES['default']['HOST'], "
    "'broker': s.CELERY_BROKER_URL, 'hsts': s.SECURE_HSTS_SECONDS, "
    "'secure_cookie': s.SESSION_COOKIE_SECURE, 'email': s.EMAIL_BACKEND, "
    "'currency': s.PANEL_CURRENCY}))"
)


def _python(code_or_args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # The browser tests' session sets DJANGO_ALLOW_ASYNC_UNSAFE in this process; no real
    # start-up has it, and `check --deploy` rightly refuses it.
    clean = {k: v for k, v in os.environ.items()
             if k not in PRODUCTION_ENV and k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    clean.update(env, DJANGO_SETTINGS_MODULE="panel.settings")
    return subprocess.run([sys.executable, *code_or_args], env=clean, cwd=BASE_DIR,
                          capture_output=True, text=True, timeout=60)


def test_development_defaults_work_with_nothing_set():
    result = _python(["-c", _DUMP], {})
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["DEBUG"] is True
    assert loaded["hsts"] == 0
    assert loaded["currency"] == "USD"


def test_production_settings_load_from_the_environment():
    result = _python(["-c", _DUMP], PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded == {
        "DEBUG": False,
        "db": "db.internal",
        "broker": "redis://redis.internal:6379/0",
        "hsts": 31536000,
        "secure_cookie": True,
        "email": "django.core.mail.backends.smtp.EmailBackend",
        "currency": "USD",
    }


@pytest.mark.parametrize("missing", ["SECRET_KEY", "FIELD_ENCRYPTION_KEY", "DATABASE_URL"])
def test_production_refuses_to_start_without_a_secret(missing):
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}
    result = _python(["-c", _DUMP], env)
    assert result.returncode != 0
    assert f"{missing} must be set when DEBUG is off" in result.stderr


def test_check_deploy_passes_for_the_documented_production_environment():
    result = _python(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_fails_in_development_mode():
    # The check above would be worthless if it passed whatever the settings.
    result = _python(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], {})
    assert result.returncode != 0
    assert "security.W018" in result.stderr  # DEBUG on
