"""The HTTP API: place and people recommendations over the live release (FastAPI).

    GET  /recommend/places?user_id=42&k=10&time_slot=evening&tags=jazz,techno&categories=dining&max_price=2
    GET  /recommend/people?user_id=42&k=10&target_place_id=7&activity_tags=jazz&new_people=true
    POST /recommend/places/batch   {"user_ids": [1, 2, 3], "k": 10, "time_slot": "evening", ...}
    POST /recommend/people/batch   {"user_ids": [1, 2, 3], "k": 10, ...}
    GET  /recommend/places?user_key=u42   (an imported log's keys: user_key, "user_keys": [...])
    GET  /healthz, GET /version, GET /metrics (Prometheus), GET /docs (OpenAPI)
    GET  /   a page to look at: pick a city and a user, see places, people and a plot (page.py)

Parameters mean what they mean on the CLI and results carry the fields of its ``--json``;
every answer names the release it came from. A malformed request (unknown parameter, wrong
type, no user) is a 422, a value outside what is valid a 400, an unknown id or a city with
nothing eligible a 404, each with an ``error`` naming the parameter; missing or corrupt
assets are a 503 naming the asset to materialize; nothing answers with a traceback. The server follows
the live release (``live.py``): a new run or a rollback is picked up without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from graphrec_pipeline.releases import DataDir
from graphrec_pipeline.serving.http_guards import MAX_BODY_BYTES, BearerToken, BodyLimit
from graphrec_pipeline.serving.http_metrics import CountRequests, HttpMetrics
from graphrec_pipeline.serving.live import LiveRecommender
from graphrec_pipeline.serving.page import PageRequest, error_page, error_status, render_page
from graphrec_pipeline.serving.query import (
    AssetError,
    MalformedRequest,
    NoCandidatesError,
    PeopleQuery,
    PlaceQuery,
    QueryError,
    UnknownIdError,
)
from graphrec_pipeline.serving.threads import limit_threads
from graphrec_pipeline.taxonomy import TIME_SLOTS

log = logging.getLogger("graphrec.serve")
MAX_BATCH = 1000
Names = str | list[str] | None


class Users(BaseModel):
    """Whom a batch is for: ``user_ids``, or an imported log's ``user_keys`` (one of the two)."""

    model_config = ConfigDict(strict=True)

    user_ids: list[int] | None = Field(None, min_length=1, max_length=MAX_BATCH)
    user_keys: list[str] | None = Field(None, min_length=1, max_length=MAX_BATCH)

    @model_validator(mode="after")
    def one_of(self):
        if (self.user_ids is None) == (self.user_keys is None):
            raise ValueError("give user_ids or user_keys, one of the two")
        return self

    def ids(self, rec) -> list[int]:
        return self.user_ids if self.user_ids is not None else rec.user_ids(self.user_keys).tolist()


class PlaceBatch(Users):
    """One place query for many users (strict JSON types: ``true`` is no time slot or id)."""

    k: int = 10
    city_id: int | None = None
    time_slot: str | int | None = None
    categories: Names = None
    tags: Names = None
    max_price: int | None = None


class PeopleBatch(Users):
    """One people query for many users (strict JSON types)."""

    k: int = 10
    city_id: int | None = None
    target_place_id: int | None = None
    activity_tags: Names = None
    new_people: bool = False


class ErrorBody(BaseModel):
    """Every error: one line naming the parameter or the asset (``asset``: what to
    materialize, on a 503)."""

    error: str
    asset: str | None = None


class PlaceOut(BaseModel):
    place_id: int
    place_key: str
    name: str
    city_id: int
    score: float
    explanations: list[str]


class PersonOut(BaseModel):
    user_id: int
    user_key: str
    s_compat: float
    p_attend: float
    s_final: float
    explanations: list[str]


class PlacesAnswer(BaseModel):
    release: str
    user_id: int
    user_key: str
    query: dict
    results: list[PlaceOut]


class PeopleAnswer(PlacesAnswer):
    results: list[PersonOut]  # type: ignore[assignment]


class PlacesOfUser(BaseModel):
    user_id: int
    user_key: str
    results: list[PlaceOut]


class PeopleOfUser(BaseModel):
    user_id: int
    user_key: str
    results: list[PersonOut]


class PlacesBatchAnswer(BaseModel):
    release: str
    query: dict
    results: list[PlacesOfUser]


class PeopleBatchAnswer(BaseModel):
    release: str
    query: dict
    results: list[PeopleOfUser]


class Health(BaseModel):
    status: str
    serving: str | None
    live: str | None
    loaded_at: float | None
    error: str | None


class Version(BaseModel):
    release: str
    release_created: str | None
    model_sha256: str
    model_built: str | None
    index_version: str | None
    indexes_built: str | None
    world_sha256: str | None
    world_built: str | None
    users: int
    places: int


ERRORS = {  # what each error status means, for the OpenAPI document
    400: {"model": ErrorBody, "description": "a value outside what is valid (an unknown tag, k out of range)"},
    404: {"model": ErrorBody, "description": "an unknown user, place or city, or nothing eligible in the city"},
    422: {"model": ErrorBody, "description": "a malformed request: unknown parameter, wrong type, missing user"},
    503: {"model": ErrorBody, "description": "no release is loaded; names the asset to materialize"},
}

PLACE_PARAMS = {
    "user_id": (int, "the user to recommend for (this or user_key)"),
    "user_key": (str, "the user's key in an imported log (this or user_id)"),
    "k": (int, "number of results, 1..200 (default 10)"),
    "city_id": (int, "city to recommend in (default: the user's home city)"),
    "time_slot": (str, "one of " + ", ".join(TIME_SLOTS) + " (context)"),
    "tags": (str, "comma-separated fine tags, e.g. jazz,techno (context)"),
    "categories": (str, "comma-separated categories (filter and context)"),
    "max_price": (int, "highest price band, 0 (free) .. 4 (luxury)"),
}
PEOPLE_PARAMS = {
    "user_id": PLACE_PARAMS["user_id"], "user_key": PLACE_PARAMS["user_key"], "k": PLACE_PARAMS["k"], "city_id": PLACE_PARAMS["city_id"],
    "target_place_id": (int, "the place of the outing (context)"),
    "activity_tags": (str, "comma-separated fine tags of the outing (context)"),
    "new_people": (str, "true: only people the user has never been out with (default false)"),
}


def _params(request: Request, spec: dict) -> dict:
    """The query string read by hand: FastAPI's per-request parameter validation took a
    quarter of a millisecond, a sixth of a whole answer, and the query types validate
    the values again anyway. Unknown names are rejected (a typo is not ignored)."""
    given = request.query_params
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise MalformedRequest(f"unknown parameter {unknown[0]!r}; expected {', '.join(spec)}")
    out: dict = {}
    for name, (kind, _) in spec.items():
        raw = given.get(name)
        if raw is None:
            continue
        if kind is int:
            try:
                out[name] = int(raw)
            except ValueError:
                raise MalformedRequest(f"{name}: expected an integer, got {raw!r}") from None
        else:
            out[name] = raw
    if ("user_id" in out) == ("user_key" in out):
        raise MalformedRequest("user_id or user_key: give one of the two")
    return out


def _openapi(spec: dict) -> dict:
    """The parameters of :func:`_params` for the OpenAPI page."""
    return {"parameters": [{"name": name, "in": "query", "required": False, "description": doc,
                            "schema": {"type": "integer" if kind is int else "string"}}
                           for name, (kind, doc) in spec.items()]}


def _error(status: int, message: str, **extra) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _validation_message(err: RequestValidationError) -> str:
    """FastAPI's list of errors as one line naming each parameter and what it got."""
    parts = []
    for e in err.errors():
        name = ".".join(str(p) for p in e.get("loc", ()) if p not in ("query", "body")) or "body"
        got = f" (got {e['input']!r})" if "input" in e and not isinstance(e["input"], dict) else ""
        parts.append(f"{name}: {e.get('msg', 'invalid')}{got}")
    return "; ".join(parts)


def _batch(rec, body: Users, kind, answer) -> JSONResponse:
    query = kind.parse(**body.model_dump(exclude={"user_ids", "user_keys"}), vocabulary=rec.vocabulary)
    user_ids = body.ids(rec)
    answers = answer(user_ids, query)
    return JSONResponse({"release": rec.release, "query": query.describe(rec.vocabulary),
                         "results": [{"user_id": u, "user_key": rec.world.user_key(u), "results": [r.to_dict() for r in a]}
                                     for u, a in zip(user_ids, answers, strict=True)]})


class InternalErrors:
    """Any other exception becomes a 500 with one line and no traceback, logged on the
    server; the connection stays open (Starlette's own handler re-raises and drops it)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        started = False

        async def tracking(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as err:
            log.exception("error answering %s", scope.get("path"))
            if started or scope["type"] != "http":
                raise
            await _error(500, f"internal error ({type(err).__name__}); see the server log")(scope, receive, send)


def create_app(data_dir: str | None = None, poll_seconds: float = 1.0, threads: int = 1,
               token: str | None = None, max_body_bytes: int = MAX_BODY_BYTES, endpoint_url: str | None = None,
               **settings) -> FastAPI:
    """The app over ``data_dir`` (default: ``$GRAPHREC_DATA_DIR``, else ``./data``; an
    ``s3://`` one at ``endpoint_url``, else ``$AWS_ENDPOINT_URL``).

    ``graphrec serve`` passes its options here as arguments, in every worker process;
    ``uvicorn --factory graphrec_pipeline.serving.http_api:create_app`` works too. ``token``
    (default ``$GRAPHREC_SERVE_TOKEN``, the way a deployment hands over a secret): when
    set, every route but ``/healthz`` needs ``Authorization: Bearer <token>``; bodies over
    ``max_body_bytes`` get a 413; ``settings`` go to the :class:`Recommender`
    (``candidates``, ``people_candidates``)."""
    data_dir = data_dir or os.environ.get("GRAPHREC_DATA_DIR")
    token = token if token is not None else os.environ.get("GRAPHREC_SERVE_TOKEN") or None
    limit_threads(threads)
    live = LiveRecommender(DataDir.at(data_dir, endpoint_url), poll_seconds=poll_seconds, **settings)

    # One answering thread: ranking is CPU work, so it runs off the event loop (which stays
    # free for /healthz and /metrics), one answer at a time as the cores allow; a thread
    # per request would only make the answers take turns at the GIL.
    compute = ThreadPoolExecutor(max_workers=1, thread_name_prefix="graphrec-answer")

    async def off_loop(fn, *args):
        return await asyncio.get_running_loop().run_in_executor(compute, fn, *args)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        live.start()
        yield
        live.stop()
        compute.shutdown(wait=False)

    app = FastAPI(title="graphrec", summary="Place and people recommendations from the live release.",
                  lifespan=lifespan)
    app.state.live = live

    @app.exception_handler(RequestValidationError)
    async def malformed_body(request: Request, err: RequestValidationError):
        return _error(422, _validation_message(err))

    @app.exception_handler(MalformedRequest)
    async def malformed_query(request: Request, err: MalformedRequest):
        return _error(422, str(err))

    @app.exception_handler(NoCandidatesError)
    async def nothing_eligible(request: Request, err: NoCandidatesError):
        return _error(404, str(err))

    @app.exception_handler(UnknownIdError)
    async def unknown_id(request: Request, err: UnknownIdError):
        return _error(404, str(err))

    @app.exception_handler(QueryError)
    async def bad_query(request: Request, err: QueryError):
        return _error(400, str(err))

    @app.exception_handler(AssetError)
    async def unavailable(request: Request, err: AssetError):
        """503 naming what to materialize; the server's own paths stay in its log."""
        log.warning("503: %s", err)
        return _error(503, str(err).replace(live.data.location.url(), "the data directory"), asset=err.asset)

    app.add_middleware(InternalErrors)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    if token:
        app.add_middleware(BearerToken, token=token)
    metrics = HttpMetrics(live.status)
    app.add_middleware(CountRequests, metrics=metrics)  # outermost: it counts the 401s, 413s and 500s too

    @app.get("/metrics", summary="Prometheus metrics: requests, latency, the served release",
             response_class=PlainTextResponse)
    def prometheus_metrics():
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    def single(request: Request, spec: dict, kind, answer: str) -> JSONResponse:
        """One user's answer: the query string parsed by hand, the query typed, the live
        recommender taken once (the request finishes on that version)."""
        params = _params(request, spec)
        rec = live.get()
        user_id = params.pop("user_id") if "user_id" in params else int(rec.user_ids([params.pop("user_key")])[0])
        query = kind.parse(**params, vocabulary=rec.vocabulary)
        results = getattr(rec, answer)(user_id, query)
        return JSONResponse({"release": rec.release, "user_id": user_id, "user_key": rec.world.user_key(user_id),
                             "query": query.describe(rec.vocabulary), "results": [r.to_dict() for r in results]})

    # Answers are computed on the answering thread (``off_loop``) and built as JSON
    # directly; ``response_model`` documents them in /openapi.json and /docs.
    @app.get("/recommend/places", summary="Top-k places for a user (§6.3)", openapi_extra=_openapi(PLACE_PARAMS),
             response_model=PlacesAnswer, responses=ERRORS)
    async def places(request: Request):
        return await off_loop(single, request, PLACE_PARAMS, PlaceQuery, "recommend_places")

    @app.get("/recommend/people", summary="Top-k people for a user to go out with (§6.4)",
             openapi_extra=_openapi(PEOPLE_PARAMS), response_model=PeopleAnswer, responses=ERRORS)
    async def people(request: Request):
        return await off_loop(single, request, PEOPLE_PARAMS, PeopleQuery, "recommend_people")

    @app.post("/recommend/places/batch", summary="One place query for many users",
              response_model=PlacesBatchAnswer, responses=ERRORS)
    async def places_batch(body: PlaceBatch):
        rec = live.get()
        return await off_loop(_batch, rec, body, PlaceQuery, rec.places)

    @app.post("/recommend/people/batch", summary="One people query for many users",
              response_model=PeopleBatchAnswer, responses=ERRORS)
    async def people_batch(body: PeopleBatch):
        rec = live.get()
        return await off_loop(_batch, rec, body, PeopleQuery, rec.people)

    def page(request: Request) -> HTMLResponse:
        try:
            status, html = render_page(live.get(), PageRequest.from_query(request.query_params))
        except AssetError as err:  # no release: 503 naming what to materialize, as the JSON routes
            log.warning("503: %s", err)
            status, html = 503, error_page(str(err).replace(live.data.location.url(), "the data directory"))
        except QueryError as err:
            status, html = error_status(err), error_page(str(err))
        return HTMLResponse(html, status_code=status)

    @app.get("/", summary="A page to look at: pick a city and a user, see the recommendations",
             response_class=HTMLResponse)
    async def front_page(request: Request):
        return await off_loop(page, request)

    @app.get("/healthz", summary="200 when a release is loaded", response_model=Health, responses={503: ERRORS[503]})
    def healthz():
        status = live.status()
        live.get()  # 503 naming what to materialize when nothing is loaded
        return JSONResponse({"status": "ok", **status})

    @app.get("/version", summary="What is served: release, model, indexes, world", response_model=Version,
             responses={503: ERRORS[503]})
    def version():
        return JSONResponse(live.get().version())

    return app
