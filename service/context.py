"""What the routes share: the settings, the metrics, and the engine once it is built (lifespan)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.requests import Request

from .answers import AnswerBudget
from .engine import Engine
from .errors import ApiError
from .metrics import Metrics
from .offload import CpuPool
from .settings import Settings

T = TypeVar("T")
MODEL_KEY = "attnserve.model"  # in the request's state: the served model that answers it (the metrics' label)


@dataclass
class Context:
    settings: Settings
    metrics: Metrics
    engines: dict[str, Engine] = field(default_factory=dict)  # set whole by load_context, before ready
    ready: bool = False
    # long texts' tokenization and large serializations run here, never on the event loop
    pool: CpuPool = field(init=False)
    answers: AnswerBudget = field(init=False)

    def __post_init__(self) -> None:
        self.pool = CpuPool(2, self.settings.max_tokenize_queue_chars, self.metrics.tokenize_chars)
        self.answers = AnswerBudget(self.settings.max_answer_values, self.metrics.answer_values)

    @property
    def engine(self) -> Engine | None:
        """The default model: the first served."""
        return next(iter(self.engines.values()), None)

    async def offload(self, fn: Callable[..., T], *args: Any) -> T:
        return await self.pool.run(fn, *args)

    async def tokenize(self, request: Request, chars: int, fn: Callable[..., T], *args: Any) -> T:
        """Tokenizing ``chars`` characters in the pool, admitted and bounded (offload.CpuPool.tokenize)."""
        return await self.pool.tokenize(request, chars, self.settings.request_timeout_s, fn, *args)


def get_context(request: Request) -> Context:
    return request.app.state.ctx


def loaded_context(request: Request) -> Context:
    """The context once its engines are built (whatever their tasks); 503 while they load."""
    ctx = get_context(request)
    if not ctx.engines:
        raise ApiError(503, "the model is still loading; retry shortly", None, {"Retry-After": "1"})
    return ctx


def served_model(request: Request, engine: Engine) -> Engine:
    """Records which served model answers the request, for the request metrics' ``model`` label."""
    request.scope.setdefault("state", {})[MODEL_KEY] = engine.name
    return engine


def get_engine(request: Request, model: str | None = None, tasks: tuple[str, ...] = ("embed",),
               route: str = "") -> tuple[Context, Engine]:
    """The context and the engine of ``model`` (None: the default, the first served); 503 while the engines are
    not built (the routes never see a partial one), 404 for a model not served, 422 when its task is not one of
    ``tasks`` (the route's)."""
    ctx = loaded_context(request)
    engine = ctx.engines.get(model) if model is not None else ctx.engine
    if engine is None:
        served = ", ".join(repr(n) for n in ctx.engines)
        raise ApiError(404, f"model: unknown model {str(model)[:100]!r}; this server serves {served}", "model")
    served_model(request, engine)
    task = engine.bundle.task
    if task.kind not in tasks and task.name not in tasks:
        route = route or request.url.path
        able = [n for n, e in ctx.engines.items() if {e.bundle.task.kind, e.bundle.task.name} & set(tasks)]
        hint = f"; models here that can: {', '.join(repr(n) for n in able)}" if able else ""
        raise ApiError(422, f"model: {engine.name!r} has task {task.name!r}; {route} needs a model whose task is "
                            f"{' or '.join(repr(t) for t in tasks)}{hint}", "model")
    return ctx, engine
