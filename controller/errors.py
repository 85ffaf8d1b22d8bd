"""SPP error codes: the one table of every failure a slice can see.

As in the SPP's RMP, success is code 0 and every failure carries a non-zero
application error code with a message. Over REST the code also picks the
HTTP status; the JSON body is ``{"code": N, "error": NAME, "message": ...}``.
docs/api.md reproduces this table.
"""

from __future__ import annotations

from dataclasses import dataclass

from .limits import MAX_BATCH_ANSWER_BYTES, MAX_BODY_BYTES, MAX_MESSAGE, MAX_QUOTE


@dataclass(frozen=True)
class ErrorCode:
    code: int
    name: str
    http: int
    meaning: str


OK = 0
CODES = [
    ErrorCode(1, "EAUTH", 401, "missing or unknown slice credentials"),
    ErrorCode(2, "EPERM", 403, "credentials used from another address than the slice host's"),
    ErrorCode(3, "EINVAL", 400, "malformed request or invalid argument"),
    ErrorCode(4, "ENOENT", 404, "no such function, fastpath, meta-interface, filter, queue, "
                                "endpoint, interface or periodic job (of this slice)"),
    ErrorCode(5, "EEXIST", 409, "the ID or endpoint is already in use"),
    ErrorCode(6, "EQUOTA", 409, "over the fastpath's quota (filters, queues, stats, memory) or the "
                                "slice's (fastpaths, meta-interfaces, endpoints, periodic jobs, "
                                "its share of an NPE or an interface)"),
    ErrorCode(7, "ENOBW", 409, "not enough bandwidth available or reserved"),
    ErrorCode(8, "ENORES", 503, "no NPE has the resources asked for"),
    ErrorCode(9, "EBUSY", 409, "the resource is still in use"),
    ErrorCode(10, "ERANGE", 400, "index, offset or size out of range"),
    ErrorCode(11, "ENOTSUP", 400, "code option, operation or HTTP method not supported"),
    ErrorCode(12, "ESWITCH", 502, "the switch refused or did not answer; nothing was changed"),
    ErrorCode(13, "EADMIN", 403, "administrator token missing or wrong"),
    ErrorCode(14, "ETIMEDOUT", 504, "no answer from the controller in time, or the connection "
                                    "broke (slice library): the call may or may not have taken "
                                    "effect"),
    ErrorCode(15, "EUNREACH", 503, "the controller could not be reached (slice library): "
                                   "nothing was sent"),
    ErrorCode(16, "E2BIG", 413, f"request body over {MAX_BODY_BYTES} bytes, or (a call in a "
                                f"batch) the batch's answers over {MAX_BATCH_ANSWER_BYTES} bytes"),
    ErrorCode(17, "EINTERNAL", 500, "the controller failed unexpectedly (a bug; logged with its "
                                    "traceback)"),
]
BY_NAME = {c.name: c for c in CODES}
BY_CODE = {c.code: c for c in CODES}


class SppError(Exception):
    """A failed SPP call: ``name`` is one of CODES (EINVAL, ENOENT, ...)."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.error = BY_NAME[name]
        self.message = message

    @property
    def code(self) -> int:
        return self.error.code

    def to_json(self) -> dict:
        msg = self.message
        if len(msg) > MAX_MESSAGE:
            msg = msg[:MAX_MESSAGE - 1] + "…"
        return {"code": self.code, "error": self.error.name, "message": msg}


def quote(value, limit: int = MAX_QUOTE) -> str:
    """``repr(value)`` cut to ``limit`` characters: how messages show input."""
    if isinstance(value, str | bytes):
        value = value[:limit]
    try:
        text = repr(value)
    except ValueError:                    # an int over Python's digit limit
        text = "<a very long integer>"
    return text if len(text) <= limit else text[:limit - 1] + "…"


def markdown_table() -> str:
    rows = ["| code | name | HTTP | meaning |", "|---|---|---|---|",
            "| 0 | OK | 200 | success |"]
    rows += [f"| {c.code} | {c.name} | {c.http} | {c.meaning} |" for c in CODES]
    return "\n".join(rows)
