import logging

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from panel.celery import app as celery_app

log = logging.getLogger(__name__)


def panel_context(request: HttpRequest) -> dict[str, str]:
    return {"panel_name": settings.PANEL_NAME, "panel_currency": settings.PANEL_CURRENCY}


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "panel/home.html")


def _database_answers() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except DatabaseError:
        log.warning("healthz: database does not answer", exc_info=True)
        return False


def _broker_answers() -> bool:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
        return True
    except Exception:  # any transport error means "not answering"; the log keeps the detail
        log.warning("healthz: broker does not answer", exc_info=True)
        return False


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers and container healthchecks: 200 only when both answer."""
    checks = {"database": _database_answers(), "broker": _broker_answers()}
    ok = all(checks.values())
    body = {"status": "ok" if ok else "fail"}
    body.update({name: "ok" if answers else "fail" for name, answers in checks.items()})
    return JsonResponse(body, status=200 if ok else 503)
