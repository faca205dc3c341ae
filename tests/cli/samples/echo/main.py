"""A function that answers every request, served like the real ones."""

import json
import sys

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import JSONResponse


@functions_framework.aio.http
async def handle(request: Request) -> JSONResponse:
    return JSONResponse({"path": request.url.path})


print(json.dumps({"level": "info", "message": "echo loaded"}), file=sys.stderr)
