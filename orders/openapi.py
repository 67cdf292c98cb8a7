"""An OpenAPI 3.0.3 description of the panel's API v2 (orders/api.py, ../shared/api-v2.md).

API v2 is one endpoint whose reply depends on the `action` parameter, and every reply is HTTP
200 JSON, errors included. OpenAPI cannot tie a reply to a body parameter, so the 200 reply is
`oneOf` every shape an action returns; each shape is closed (`required`, no extra keys) so that
a reply that breaks the contract matches none of them. The shapes are what orders/api.py really
sends: money and counts as strings, IDs as integers, except the single `refill` reply, whose ID
is a string as in the seed.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.urls import get_script_prefix
from django.views.decorators.http import require_safe

from orders.models import ServiceType
from orders.params import DATE, LINES, SERVICE_TYPE_SPECS, TypeField

Schema = dict[str, Any]

ACTIONS = ("services", "add", "status", "refill", "refill_status", "cancel", "balance")
ORDER_STATUSES = ("Pending", "In progress", "Processing", "Completed", "Partial", "Canceled")
REFILL_STATUSES = ("Pending", "In progress", "Completed", "Rejected")
# Money as API v2 writes it ("0.27819"), whole numbers as strings ("157").
DECIMAL_PATTERN = r"^[0-9]+(\.[0-9]+)?$"
COUNT_PATTERN = r"^[0-9]+$"

# Every shape a reply can take, as component names: `Reply` is exactly one of them.
REPLIES = ("Error", "ServiceList", "OrderCreated", "OrderStatus", "MultiStatus",
           "RefillCreated", "RefillList", "RefillStatus", "RefillStatusList", "CancelList",
           "Balance")

_IDS = "IDs separated by commas, up to 100"
_LIST = "lines separated by \\n or \\r\\n"


def _field_text(spec_field: TypeField) -> str:
    text = spec_field.help
    if spec_field.kind == LINES:
        text += f" ({_LIST})"
    if spec_field.kind == DATE:
        text += ", format d/m/Y"
    if spec_field.choices:
        text += f"; one of {', '.join(str(choice) for choice in spec_field.choices)}"
    return text + ("" if spec_field.required else " (optional)")


def add_parameters() -> dict[str, str]:
    """The parameters of `add` besides `service`, each with the types that take it, from
    orders/params.py's table (the same one that validates them)."""
    uses: dict[str, dict[str, list[str]]] = {}  # name -> description -> types
    for spec in SERVICE_TYPE_SPECS:
        for spec_field in spec.fields:
            by_text = uses.setdefault(spec_field.name, {})
            by_text.setdefault(_field_text(spec_field), []).append(spec.name)
    return {name: "add: " + "; ".join(f"{_which(types)}: {text}" for text, types in by_text.items())
            for name, by_text in uses.items()}


def _which(types: list[str]) -> str:
    others = [spec.name for spec in SERVICE_TYPE_SPECS if spec.name not in types]
    if len(others) < len(types) / 2:  # say the few it is not for
        return "every type" + (f" but {', '.join(others)}" if others else "")
    return ", ".join(types)


# Every request parameter. All are text: the protocol is a form POST (a JSON body may carry
# numbers or lists instead; they are read as text).
PARAMETERS: dict[str, str] = {
    "key": "Your API key.",
    "action": "What to do; the other parameters depend on it.",
    "service": "add: the service ID, from `services`.",
    **add_parameters(),
    "order": "status, refill: the order ID.",
    "orders": f"status, refill, cancel: order {_IDS}.",
    "refill": "refill_status: the refill ID.",
    "refills": f"refill_status: refill {_IDS}.",
}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _closed(properties: dict[str, Schema], **extra: Any) -> Schema:
    """An object with exactly these keys, all required."""
    return {"type": "object", "required": list(properties), "properties": properties,
            "additionalProperties": False, **extra}


def _text(description: str = "", **extra: Any) -> Schema:
    return {"type": "string", **({"description": description} if description else {}), **extra}


def _id(description: str) -> Schema:
    return {"type": "integer", "format": "int64", "minimum": 1, "description": description}


def _echoed_id(description: str) -> Schema:
    # A batch item that is not a positive whole number is echoed back as the client wrote it.
    return {"oneOf": [_id(description), _text("An item that is not an ID, as sent.")]}


def _error_or(schema: Schema) -> Schema:
    return {"oneOf": [schema, _ref("Error")]}


def _batch(item: Schema, description: str) -> Schema:
    return {"type": "array", "minItems": 1, "maxItems": 100, "items": item,
            "description": description}


def request_schema() -> Schema:
    properties = {name: _text(text) for name, text in PARAMETERS.items()}
    properties["action"]["enum"] = list(ACTIONS)
    return {"type": "object", "required": ["key", "action"], "properties": properties}


def component_schemas() -> dict[str, Schema]:
    money = _text("Money in the panel's currency.", pattern=DECIMAL_PATTERN, example="0.27819")
    currency = _text("The panel's currency.", pattern="^[A-Z]{3}$", example="USD")
    order_status = _closed({
        "charge": _text("What the order cost, net of refunds.", pattern=DECIMAL_PATTERN),
        "start_count": _text("The count before delivery began.", pattern=r"^-?[0-9]+$"),
        "status": _text(enum=list(ORDER_STATUSES)),
        "remains": _text("Units not delivered.", pattern=COUNT_PATTERN),
        "currency": currency,
    }, description="status (one order)")
    return {
        "Request": request_schema(),
        "Error": _closed({"error": _text("What was wrong.", minLength=1)},
                         description="Any action: the request was refused."),
        "Service": {
            "type": "object",
            "required": ["service", "name", "type", "category", "rate", "min", "max",
                         "refill", "cancel"],
            "properties": {
                "service": _id("The service ID."),
                "name": _text(),
                "type": _text(enum=[kind.value for kind in ServiceType]),
                "category": _text(),
                "rate": {**money, "description": "Price per 1000 units.", "example": "0.90"},
                "min": _text("Minimum quantity.", pattern=COUNT_PATTERN),
                "max": _text("Maximum quantity.", pattern=COUNT_PATTERN),
                "refill": {"type": "boolean"},
                "cancel": {"type": "boolean"},
                "dripfeed": {"type": "boolean"},
                "description": _text(),
            },
            # The protocol lets servers add keys; clients ignore the ones they do not know.
            "additionalProperties": True,
        },
        "ServiceList": {"type": "array", "items": _ref("Service"), "description": "services"},
        "OrderCreated": _closed({"order": _id("The new order's ID.")}, description="add"),
        "OrderStatus": order_status,
        "OrderStatusOrError": _error_or(_ref("OrderStatus")),
        "MultiStatus": {
            "type": "object", "minProperties": 1, "maxProperties": 100,
            "additionalProperties": _ref("OrderStatusOrError"),
            "description": "status (orders): keyed by each order ID as sent.",
        },
        "RefillCreated": _closed({"refill": _text("The refill's ID.", pattern=COUNT_PATTERN)},
                                 description="refill (one order)"),
        "RefillList": _batch(_closed({
            "order": _echoed_id("The order ID."),
            "refill": _error_or(_id("The refill's ID.")),
        }), "refill (orders)"),
        "RefillStatus": _closed({"status": _text(enum=list(REFILL_STATUSES))},
                                description="refill_status (one refill)"),
        "RefillStatusList": _batch(_closed({
            "refill": _echoed_id("The refill ID."),
            "status": _error_or(_text(enum=list(REFILL_STATUSES))),
        }), "refill_status (refills)"),
        "CancelList": _batch(_closed({
            "order": _echoed_id("The order ID."),
            "cancel": _error_or({"type": "integer", "enum": [1],
                                 "description": "1: the request was accepted."}),
        }), "cancel"),
        "Balance": _closed({"balance": money, "currency": currency}, description="balance"),
        "Reply": {"oneOf": [_ref(name) for name in REPLIES]},
    }


def _operation(method: str, operation_id: str) -> Schema:
    operation: Schema = {
        "operationId": operation_id,
        "summary": f"API v2 ({method.upper()}): one endpoint, the action says what to do",
        "responses": {"200": {
            "description": "Every reply, errors included, is HTTP 200 with a JSON body.",
            "content": {"application/json": {"schema": _ref("Reply")}},
        }},
    }
    if method == "post":
        operation["requestBody"] = {"required": True, "content": {
            "application/x-www-form-urlencoded": {"schema": _ref("Request")},
            "application/json": {"schema": _ref("Request")},
        }}
    else:
        operation["parameters"] = [
            {"name": name, "in": "query", "required": name in ("key", "action"),
             "description": text,
             "schema": _text(enum=list(ACTIONS)) if name == "action" else _text()}
            for name, text in PARAMETERS.items()
        ]
    return operation


def _path_item(suffix: str) -> Schema:
    return {"post": _operation("post", f"apiV2Post{suffix}"),
            "get": _operation("get", f"apiV2Get{suffix}")}


def build_openapi(server_url: str) -> Schema:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "SMM panel API v2",
            "version": "2",
            "description": "The panel's API v2 for customers and downstream panels. Send `key` "
                           "and `action` with the action's parameters as a form POST (or JSON, "
                           "or a query string). Errors are `{\"error\": \"...\"}` with HTTP 200.",
        },
        "servers": [{"url": server_url}],
        "paths": {"/api/v2": _path_item(""), "/api/v2/": _path_item("Slash")},
        "components": {"schemas": component_schemas()},
    }


@require_safe
def openapi_json(request: HttpRequest) -> JsonResponse:
    server_url = request.build_absolute_uri(get_script_prefix()).rstrip("/")
    return JsonResponse(build_openapi(server_url))
