"""Customer notifications: templates in zh-CN and en, and the channels that deliver them
(in-app inbox, SMS, email) per the customer's preferences (SPEC §6)."""

from refundry.notifications.templates import (
    TEMPLATE_KEYS,
    InvalidParam,
    MissingParam,
    Rendered,
    TemplateError,
    UnknownTemplate,
    format_money,
    render,
)

__all__ = [
    "TEMPLATE_KEYS",
    "InvalidParam",
    "MissingParam",
    "Rendered",
    "TemplateError",
    "UnknownTemplate",
    "format_money",
    "render",
]
