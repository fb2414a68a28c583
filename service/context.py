"""What the routes share: the settings, the metrics, and the engine once it is built (lifespan)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.requests import Request

from .engine import Engine
from .errors import ApiError
from .metrics import Metrics
from .settings import Settings

T = TypeVar("T")


@dataclass
class Context:
    settings: Settings
    metrics: Metrics
    engine: Engine | None = None  # set whole by load_context, before ready
    ready: bool = False
    # tokenization and large serializations run here, never on the event loop
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=2, thread_name_prefix="attnserve-cpu")
    )

    async def offload(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)


def get_context(request: Request) -> Context:
    return request.app.state.ctx


def get_engine(request: Request) -> tuple[Context, Engine]:
    """The context and its engine; 503 while the engine is not built (the routes never see a partial one)."""
    ctx = get_context(request)
    if ctx.engine is None:
        raise ApiError(503, "the model is still loading; retry shortly", None, {"Retry-After": "1"})
    return ctx, ctx.engine
