"""How entity numbers become the ids on the wire (one place, used by all writers).

>>> card_id(42), customer_id(7), merchant_id(17), device_id(3), ip_text(1729491980)
('c-00000042', 'u-00000007', 'm-000017', 'd-000000003', '103.21.244.12')
"""

from __future__ import annotations

CARD = "c-%08d"
CUSTOMER = "u-%08d"
MERCHANT = "m-%06d"
DEVICE = "d-%09d"


def card_id(i: int) -> str:
    return CARD % i


def customer_id(i: int) -> str:
    return CUSTOMER % i


def merchant_id(i: int) -> str:
    return MERCHANT % i


def device_id(i: int) -> str:
    return DEVICE % i


def ip_text(value: int) -> str:
    """An integer IPv4 address in dotted form."""
    return f"{(value >> 24) & 255}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"
