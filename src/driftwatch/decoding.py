"""Bounded JSON structure checks: nesting depth and duplicate keys, before decoding.

The input is the attacker's. Two shapes of valid-looking JSON are dangerous:

- **deep nesting**: a few thousand ``[`` or ``{"a":`` (36 KB, under the 64 KB payload
  cap, possibly inside a field nobody reads) makes a recursive decoder raise
  ``RecursionError``; a worker that lets it out crash-loops on the same message;
- **duplicate keys**: ``{"amount": "99999.99", ..., "amount": "1526.51"}`` is read as
  one transaction by a last-wins parser and as another by a first-wins one (a known way
  to make two systems disagree about what was paid).

:func:`structure_problem` answers "may this payload be decoded?" for any bytes, never
raises, and costs a few microseconds on an ordinary event:

1. ``{`` plus ``[`` counted over the whole payload bound the nesting depth from above:
   at most :data:`MAX_DEPTH` of them and the payload cannot be too deep;
2. a duplicate key disappears when the payload is decoded into dicts and encoded again,
   taking at least its ``:`` with it, and nothing else changes the number of colons
   (a colon inside a string survives as itself) unless the text escapes one as
   ``\\u003a``. So equal colon counts before and after mean no object anywhere holds a
   key twice;
3. anything else (too many brackets, colons lost, ``\\u`` escapes, not decodable) goes
   to an exact, linear scan over the tokens that finds the first problem and its path.

Reasons: ``too_deep`` and ``duplicate_key:<path>``, the path written as in the other
rejection reasons (``model.score``, ``shadow[].version``, ``$`` for the top level).

>>> structure_problem(b'{"a": 1, "b": {"c": [1, 2]}}') is None
True
>>> structure_problem(b'{"amount": "9.99", "amount": "1.00"}')
('duplicate_key:amount', 'key "amount" appears twice in the same object')
>>> structure_problem(b'{"model": {"score": 0.1, "score": 0.9}}')[0]
'duplicate_key:model.score'
>>> structure_problem(b'[' * 40 + b']' * 40)[0]
'too_deep'
"""

from __future__ import annotations

import json
import re

import msgspec

MAX_DEPTH = 16
"""Deepest nesting of objects and arrays accepted (the contracts need 3)."""

_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\]:]')
"""Strings and the structural characters that matter for depth and keys."""
_generic = msgspec.json.Decoder()
_encode = msgspec.json.Encoder().encode
_OPEN_OBJ, _OPEN_ARR, _CLOSE_OBJ, _CLOSE_ARR, _COLON, _QUOTE = b"{[}]:\""


def structure_problem(data: bytes) -> tuple[str, str] | None:
    """Why ``data`` must not be decoded (``(reason, detail)``), or None.

    Never raises. Payloads that are not JSON at all pass (None): the decoder that
    follows names what is wrong with them.

    Parameters
    ----------
    data : bytes
        One raw payload (its size is bounded by the caller).

    Returns
    -------
    tuple of (str, str) or None
        ``("too_deep", detail)`` or ``("duplicate_key:<path>", detail)``.
    """
    try:
        if data.count(b"{") + data.count(b"[") > MAX_DEPTH or b"\\u" in data:
            return _scan(data)
        try:
            obj = _generic.decode(data)
        except (msgspec.DecodeError, ValueError, RecursionError):
            return _scan(data)
        if data.count(b":") == _encode(obj).count(b":"):
            return None
        return _scan(data)
    except Exception as exc:  # pragma: no cover - belt and braces: never raise
        return "invalid_json", f"structure check failed: {type(exc).__name__}"


def _key_text(token: bytes) -> str:
    """The decoded text of a JSON string token (its raw text if it does not decode)."""
    try:
        value = json.loads(token)
    except ValueError:
        return token[1:-1].decode("utf-8", "replace")
    return value if isinstance(value, str) else str(value)


def _scan(data: bytes) -> tuple[str, str] | None:
    """The exact check: one pass over the string and bracket tokens, linear in size."""
    # one frame per open container: (keys seen, or None for an array; its path)
    frames: list[tuple[set[str] | None, str]] = []
    last_string: bytes | None = None
    child_key = ""
    for m in _TOKEN.finditer(data):
        token = m.group()
        first = token[0]
        if first == _QUOTE:
            last_string = token
            continue
        if first == _COLON:
            if frames and frames[-1][0] is not None and last_string is not None:
                keys, path = frames[-1]
                assert keys is not None
                key = _key_text(last_string)
                if key in keys:
                    where = _join(path, key)
                    return f"duplicate_key:{where}", (
                        f'key "{key[:64]}" appears twice in the same object'
                    )
                keys.add(key)
                child_key = key
            last_string = None
            continue
        last_string = None
        if first in (_OPEN_OBJ, _OPEN_ARR):
            if len(frames) >= MAX_DEPTH:
                return "too_deep", f"nesting deeper than {MAX_DEPTH} levels"
            if not frames:
                path = ""
            elif frames[-1][0] is None:
                path = frames[-1][1] + "[]"
            else:
                path = _join(frames[-1][1], child_key)
            frames.append((set() if first == _OPEN_OBJ else None, path))
        elif frames:  # a closing bracket
            frames.pop()
    return None


def _join(path: str, key: str) -> str:
    key = key[:64]
    return f"{path}.{key}" if path else key


# -- msgspec errors as reasons ---------------------------------------------------------
_PATH = re.compile(r" - at `\$\.?(.*?)`$")
_MISSING = re.compile(r"Object missing required field `([^`]*)`")


def _path(msg: str) -> tuple[str, str]:
    m = _PATH.search(msg)
    if m is None:
        return msg, ""
    path = re.sub(r"\[(?:\d+|\.\.\.)\]", "[]", m.group(1)).replace(".[", "[")
    return msg[: m.start()], path


def reason_for(exc: Exception) -> str:
    """Map a msgspec error to a machine-readable ``kind:path`` reason."""
    msg = str(exc)
    if isinstance(exc, UnicodeDecodeError):
        return "invalid_utf8"
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        # msgspec < 0.23 raised UnicodeDecodeError for a string that is not UTF-8;
        # 0.23 raises DecodeError("Invalid UTF-8 encoded string")
        return "invalid_utf8" if msg.startswith("Invalid UTF-8") else "invalid_json"
    head, path = _path(msg)
    m = _MISSING.match(head)
    if m:
        field = f"{path}.{m.group(1)}" if path else m.group(1)
        return f"missing_field:{field}"
    where = path or "$"
    if head.startswith("Expected `object`") and not path:
        return "not_an_object"
    if "of length >=" in head:
        return f"empty:{where}"
    if "of length <=" in head:
        return f"too_long:{where}"
    if "matching regex" in head:
        return f"bad_format:{where}"
    if ">=" in head or "<=" in head:
        return f"out_of_range:{where}"
    if head.startswith("Invalid enum value"):
        return f"bad_enum:{where}"
    if "encoded datetime" in head:
        return f"bad_timestamp:{where}"
    if "encoded date" in head:
        return f"bad_date:{where}"
    if head.startswith("Expected `"):
        return f"wrong_type:{where}"
    return f"invalid:{where}"
