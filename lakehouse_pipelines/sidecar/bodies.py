"""Request bodies: strict JSON on every route, and validation errors that never echo what was sent.

Python's `json` (what Starlette parses bodies with) takes more than JSON: `NaN` and `Infinity`, numbers that
overflow to `inf`, and `\\ud800`-style escapes that decode to lone surrogates, which no UTF-8 encoder
accepts. Those values got past validation into our code (DuckDB, the embedder, Qdrant) or into FastAPI's
default error answer, which echoes each invalid input back and then failed to encode it: a 500 either
way. So every route parses its body here (`StrictJsonRoute`); anything that is not strict JSON (RFC 8259:
UTF-8, finite numbers, valid Unicode, at most MAX_DEPTH levels) is a `json_invalid` validation error, and
`validation_error` answers every validation error with 422, field locations and messages, never the
submitted values (which hold the user's SQL or query).

An endpoint whose only inputs are one body model and the Request (`/search`, `/sql`: the hot routes) is
called directly, its body checked here to the same 422s FastAPI gives a declared body: FastAPI's
per-request dependency solving was 8-13% of a `/search` at 20K points (2 workers under wrk: 2,890-3,060
req/s called directly, 2,660-2,720 through it). FastAPI still builds the route from the signature, so
OpenAPI and the docs are unchanged; the route's own telemetry span (FastAPI's `endpoint` operation) is
what such a route goes without (the request's span remains).
"""

from __future__ import annotations

import inspect
import json
import math
import re
import typing
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.exceptions import HTTPException

MAX_DEPTH = 32  # the deepest legitimate body (a search filter's range) has 4 levels
MAX_LOC_CHARS = 64
_SURROGATE = re.compile("[\ud800-\udfff]")


class _NotStrict(ValueError):
    """A value Python's json parser accepts but JSON does not."""


def _no_constant(name: str) -> Any:
    raise _NotStrict(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotStrict("a number beyond the range of a 64-bit float")
    return value


_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)


def parse_json(body: bytes) -> Any:
    """`body` as strict JSON; json.JSONDecodeError (which FastAPI turns into a 422) for anything else."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError("invalid UTF-8", "", exc.start) from None
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise json.JSONDecodeError(exc.msg, "", exc.pos) from None
    except _NotStrict as exc:
        raise json.JSONDecodeError(str(exc), "", 0) from None
    except RecursionError:
        raise json.JSONDecodeError(f"nested deeper than {MAX_DEPTH} levels", "", 0) from None
    except ValueError:  # an integer of more than 4,300 digits
        raise json.JSONDecodeError("a number with too many digits", "", 0) from None
    _check_tree(value)
    return value


def _check_tree(value: Any) -> None:
    """Depth and Unicode of every key and string, iteratively (no recursion for a hostile depth)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                raise json.JSONDecodeError("invalid Unicode: a lone surrogate escape", "", 0)
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise json.JSONDecodeError(f"nested deeper than {MAX_DEPTH} levels", "", 0)
            if isinstance(item, dict):
                stack.extend((k, depth) for k in item)
                stack.extend((v, depth + 1) for v in item.values())
            else:
                stack.extend((v, depth + 1) for v in item)


class StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class StrictJsonRoute(APIRoute):
    """An APIRoute whose JSON body is parsed by `parse_json`: set as `route_class` of every router.

    `direct`: call an endpoint that takes one body model and the Request itself (module docstring);
    False sends every request through FastAPI's own handler.
    """

    direct = True

    def get_route_handler(self) -> Handler:
        if self.direct and (handler := _direct_handler(self.endpoint, self.dependencies)) is not None:
            return handler
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive, request._send))

        return strict


def _direct_handler(endpoint: Callable, dependencies: list) -> Handler | None:
    """A handler calling `async def endpoint(body: SomeModel, request: Request) -> Response` with its
    body validated, or None for any other endpoint (or one with route dependencies)."""
    if dependencies or not inspect.iscoroutinefunction(endpoint):
        return None
    hints = typing.get_type_hints(endpoint)
    names = list(inspect.signature(endpoint).parameters)
    models = [n for n in names if inspect.isclass(hints.get(n)) and issubclass(hints[n], BaseModel)]
    requests = [n for n in names if hints.get(n) is Request]
    if len(names) != 2 or len(models) != 1 or len(requests) != 1:
        return None
    body_name, request_name, adapter = models[0], requests[0], TypeAdapter(hints[models[0]])

    async def handler(request: Request) -> Response:
        try:
            received = await request.body()
        except HTTPException:  # BodyLimit's 413
            raise
        except Exception:  # the client went away mid-body, as FastAPI answers it
            raise HTTPException(400, detail="There was an error parsing the body") from None
        body = _validated_body(adapter, received, request.headers.get("content-type"))
        response = await endpoint(**{body_name: body, request_name: request})
        if not isinstance(response, Response):
            raise TypeError(f"{endpoint.__name__} must return a Response on the direct path (bodies.py)")
        return response

    return handler


def _validated_body(adapter: TypeAdapter, body: bytes, content_type: str | None) -> Any:
    """The body as the model, or the RequestValidationError FastAPI raises for a declared body: missing
    when empty, json_invalid when not strict JSON, and a non-JSON content type validates the raw bytes
    (which no model accepts)."""
    if not body:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    value: Any = body
    if _is_json(content_type):
        try:
            value = parse_json(body)
        except json.JSONDecodeError as exc:
            raise RequestValidationError(
                [
                    {
                        "type": "json_invalid",
                        "loc": ("body", exc.pos),
                        "msg": "JSON decode error",
                        "input": {},
                        "ctx": {"error": exc.msg},
                    }
                ]
            ) from None
    try:
        return adapter.validate_python(value, from_attributes=True)  # as FastAPI validates a body
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None


def _is_json(content_type: str | None) -> bool:
    """FastAPI's test for a JSON body: `application/json` or `application/*+json`, any parameters."""
    main, _, sub = (content_type or "").partition(";")[0].strip().lower().partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


def safe_text(text: str) -> str:
    """`text` encodable as UTF-8 (lone surrogates as `\\udXXX`): an error answer must always render."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _loc(part: Any) -> str | int:
    if isinstance(part, int) and not isinstance(part, bool):
        return part
    return safe_text(str(part))[:MAX_LOC_CHARS]


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with each error's location, message and type, never its `input` (nor `ctx`, which may hold it)."""
    detail = []
    for error in exc.errors():
        message = str(error.get("msg", "invalid value"))
        if error.get("type") == "json_invalid":  # our parser's message names the problem, not the value
            message = f"invalid JSON: {(error.get('ctx') or {}).get('error', 'cannot be parsed')}"
        detail.append(
            {
                "loc": [_loc(p) for p in error.get("loc", ())],
                "msg": safe_text(message),
                "type": safe_text(str(error.get("type", ""))),
            }
        )
    summary = "; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in detail[:5])
    return JSONResponse({"error": f"invalid request: {summary}", "detail": detail}, status_code=422)
