"""The one way the panel refuses a request: `Refusal`, carrying an API v2 error text.

Placing, refills, cancels, the API and the pages all raise and catch this one type, and take
their texts from here, because clients and people match on the exact words
(../shared/api-v2.md, "Error strings"). Pure Python: no Django, so params.py may use it.
"""

INVALID_KEY = "Invalid API key"
BAD_REQUEST = "Incorrect request"
INCORRECT_SERVICE = "Incorrect service ID"
INCORRECT_ORDER = "Incorrect order ID"
BAD_LINK = "Incorrect link"
NOT_ENOUGH_FUNDS = "Not enough funds on balance"
REFILL_NOT_FOUND = "Refill not found"
NOT_ELIGIBLE_REFILL = "Order not eligible for refill"
NOT_ELIGIBLE_CANCEL = "Order not eligible for cancel"
ACTIVE_LINK = "You have active order with this link. Please wait until order being completed."
TOO_MANY = "Too many requests, please slow down"


def quantity_below(minimum: int) -> str:
    return f"Quantity less than minimal {minimum}"


def quantity_above(maximum: int) -> str:
    return f"Quantity more than maximum {maximum}"


class Refusal(ValueError):
    """A request the panel will not carry out; `.message` is the exact text the client sees.
    `field` names the parameter it concerns, where one does (the order form shows it there)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field
