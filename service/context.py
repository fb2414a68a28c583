"""What the routes share, built in the app's lifespan from the settings and the bundle."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.requests import Request

from .batcher import Batcher
from .bundle import Bundle
from .metrics import Metrics
from .runtime import Runtime
from .settings import Settings
from .tokenizer import TextTokenizer

T = TypeVar("T")


@dataclass
class Context:
    settings: Settings
    metrics: Metrics
    bundle: Bundle | None = None
    runtime: Runtime | None = None
    tokenizer: TextTokenizer | None = None
    batcher: Batcher | None = None
    ready: bool = False
    # tokenization and large serializations run here, never on the event loop
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=2, thread_name_prefix="attnserve-cpu")
    )

    @property
    def model_name(self) -> str:
        assert self.bundle is not None
        return self.settings.served_name or self.bundle.name

    async def offload(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)


def get_context(request: Request) -> Context:
    return request.app.state.ctx
