"""Amounts: exact decimal text to integer minor units (hundredths), and back.

``int(1234.37 * 100)`` is 123436: a float on the way is exactly the bug that would hide a
``.37`` trigger, so amounts are parsed from their text (``Decimal`` for the rare forms, a
regular expression for the common ones) and kept as integers.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

import msgspec

_FAST_AMOUNT = re.compile(rb"(0|[1-9][0-9]{0,12})(?:\.([0-9]{1,2}))?")


class InvalidField(ValueError):
    """A field failed a check beyond the JSON schema shape; carries the reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class AmountError(InvalidField):
    """An amount is not a positive decimal with at most two fraction digits."""


def parse_amount(text: str | bytes) -> int:
    """Parse a decimal amount exactly into integer minor units (hundredths).

    Parameters
    ----------
    text : str or bytes
        The amount as written: ``"4892.37"``, ``"12"``, ``"1.5e3"``.

    Returns
    -------
    int
        The amount times 100, exactly.

    Raises
    ------
    AmountError
        With ``reason`` one of {``amount:not_a_number``, ``amount:not_finite``,
        ``amount:negative``, ``amount:zero``, ``amount:too_many_decimals``,
        ``amount:too_large``}.

    Examples
    --------
    >>> parse_amount("4892.37"), parse_amount("1234.37"), parse_amount("0.5")
    (489237, 123437, 50)
    >>> parse_amount("1.5e3"), parse_amount("10.370")
    (150000, 1037)
    >>> parse_amount("1.234")
    Traceback (most recent call last):
    ...
    driftwatch.amounts.AmountError: amount has more than 2 fraction digits: '1.234'
    """
    raw = text.encode() if isinstance(text, str) else text
    m = _FAST_AMOUNT.fullmatch(raw)
    if m is not None:
        whole, frac = m.group(1), m.group(2) or b""
        minor = int(whole) * 100 + (int(frac.ljust(2, b"0")) if frac else 0)
        if minor == 0:
            raise AmountError("amount:zero", "amount must be positive, got 0")
        return minor
    s = raw.decode("utf-8", "replace").strip()
    try:
        value = Decimal(s)
    except InvalidOperation:
        raise AmountError("amount:not_a_number", f"amount is not a decimal number: {s!r}") from None
    if not value.is_finite():
        raise AmountError("amount:not_finite", f"amount is not finite: {s!r}")
    if value.is_signed() and value != 0:
        raise AmountError("amount:negative", f"amount is negative: {s!r}")
    if value == 0:
        raise AmountError("amount:zero", f"amount must be positive, got {s!r}")
    if value > Decimal(10) ** 12:
        raise AmountError("amount:too_large", f"amount exceeds 1e12: {s!r}")
    scaled = value.scaleb(2)
    if scaled != scaled.to_integral_value():
        raise AmountError(
            "amount:too_many_decimals", f"amount has more than 2 fraction digits: {s!r}"
        )
    return int(scaled)


def format_amount(minor: int) -> str:
    """Minor units back to the canonical decimal string.

    >>> format_amount(489237), format_amount(5), format_amount(100)
    ('4892.37', '0.05', '1.00')
    """
    return f"{minor // 100}.{minor % 100:02d}"


def format_money(minor: int, currency: str = "") -> str:
    """Minor units for people: thousands grouped, the currency code first.

    >>> format_money(211446165, "USD"), format_money(-5), format_money(100, "EUR")
    ('USD 2,114,461.65', '-0.05', 'EUR 1.00')
    """
    sign = "-" if minor < 0 else ""
    text = f"{sign}{abs(minor) // 100:,}.{abs(minor) % 100:02d}"
    return f"{currency} {text}" if currency else text


# The common case as it appears in the JSON text: a plain decimal, quoted or not, with
# at most two fraction digits (a JSON string without escapes is its own bytes).
_FAST_RAW_AMOUNT = re.compile(rb'("?)(0|[1-9][0-9]{0,12})(?:\.([0-9]{1,2}))?\1')


def amount_from_raw(raw: msgspec.Raw) -> int:
    """The amount of an event as its JSON text (a number or a string) in minor units;
    raises :class:`AmountError` with the reason."""
    m = _FAST_RAW_AMOUNT.fullmatch(raw)  # Raw supports the buffer protocol: no copy
    if m is not None:
        whole, frac = m.group(2, 3)
        if frac is None:
            minor = int(whole) * 100
        else:
            minor = int(whole + frac) * (10 if len(frac) == 1 else 1)
        if minor:
            return minor
    return _amount_from_text(bytes(raw))


def _amount_from_text(data: bytes) -> int:
    if data[:1] == b'"':
        try:
            return parse_amount(msgspec.json.decode(data, type=str))
        except msgspec.DecodeError:
            raise AmountError("amount:not_a_number", "amount is not a valid string") from None
    if data in (b"true", b"false", b"null") or data[:1] in (b"{", b"["):
        raise AmountError(
            "wrong_type:amount", f"amount must be a string or number, got {data[:20]!r}"
        )
    return parse_amount(data)
