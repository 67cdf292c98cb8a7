"""The floor views: the least database work `add` and `status` could do (look up the key; a
conditional balance update, the order and its ledger entry in one transaction / one query for
100 orders), with nothing else: no pricing, no validation, no rate limit, no log, no kick."""

import hashlib
import hmac
import json

from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from orders.models import Order
from panel.models import ApiKey, LedgerEntry


def _user_id(raw: str) -> int | None:
    digest = hashlib.sha256(raw.encode()).hexdigest()
    for key in ApiKey.objects.filter(prefix=raw[:8], revoked_at__isnull=True):
        if hmac.compare_digest(key.hashed, digest):
            return key.user_id
    return None


@csrf_exempt
def floor_add(request: HttpRequest) -> JsonResponse:
    user_id = _user_id(request.POST.get("key", ""))
    if user_id is None:
        return JsonResponse({"error": "Invalid API key"})
    service_id = int(request.POST["service"])
    quantity = int(request.POST["quantity"])
    charge = request.POST["charge"]  # precomputed by the benchmark: no pricing at all
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("UPDATE panel_user SET balance = balance - %s WHERE id = %s "
                           "AND balance >= %s RETURNING balance", [charge, user_id, charge])
            balance = cursor.fetchone()[0]
        order = Order.objects.create(user_id=user_id, service_id=service_id,
                                     link=request.POST["link"], quantity=quantity,
                                     charged_units=quantity, rate=0, charge=charge, cost=0,
                                     next_check_at=timezone.now())
        LedgerEntry.objects.create(user_id=user_id, amount=f"-{charge}", kind="charge",
                                   order_id=order.pk, balance_after=balance)
    return JsonResponse({"order": order.pk})


@csrf_exempt
def floor_status(request: HttpRequest) -> JsonResponse:
    user_id = _user_id(request.POST.get("key", ""))
    if user_id is None:
        return JsonResponse({"error": "Invalid API key"})
    ids = [int(i) for i in request.POST["orders"].split(",")]
    rows = Order.objects.filter(user_id=user_id, pk__in=ids).values_list(
        "pk", "charge", "start_count", "status", "remains")
    return JsonResponse({str(pk): {"charge": str(charge), "start_count": str(start or 0),
                                   "status": status, "remains": str(remains or 0),
                                   "currency": "USD"}
                         for pk, charge, start, status, remains in rows},
                        json_dumps_params={"separators": (",", ":")}, safe=False,
                        encoder=json.JSONEncoder)



def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")
