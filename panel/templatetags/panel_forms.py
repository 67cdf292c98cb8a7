"""`{% include "includes/field.html" with field=form.x %}` renders a field the panel's way:
label above, the input, its hint, its errors under it, tied together for screen readers.
`{% widget field %}` is the input alone with those ties (aria-describedby, aria-invalid)."""

from django import forms, template
from django.utils.safestring import SafeString

register = template.Library()


def hint_id(field: forms.BoundField) -> str:
    return f"{field.auto_id}-hint"


def error_id(field: forms.BoundField) -> str:
    return f"{field.auto_id}-error"


@register.simple_tag
def widget(field: forms.BoundField, **given: str) -> SafeString:
    attrs: dict[str, str | bool] = dict(given)
    described = [given.get("describedby", "")]
    attrs.pop("describedby", None)
    if field.help_text:
        described.append(hint_id(field))
    if field.errors:
        described.append(error_id(field))
        attrs["aria-invalid"] = "true"
    if any(described):
        attrs["aria-describedby"] = " ".join(d for d in described if d)
    return field.as_widget(attrs=attrs)


@register.filter
def field_hint_id(field: forms.BoundField) -> str:
    return hint_id(field)


@register.filter
def field_error_id(field: forms.BoundField) -> str:
    return error_id(field)


@register.filter
def is_checkbox(field: forms.BoundField) -> bool:
    return isinstance(field.field.widget, forms.CheckboxInput)
