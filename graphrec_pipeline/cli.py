"""``graphrec``: place and people recommendations from the materialized assets.

    graphrec recommend places --user-id 42 [-k 10] [--city-id 3] [--time-slot evening]
                              [--tags jazz,techno] [--categories dining] [--max-price 2] [--json]
    graphrec recommend people --user-id 42 [-k 10] [--city-id 3] [--target-place-id 7]
                              [--activity-tags jazz] [--new-people] [--json]
    graphrec list tags|categories|time-slots|cities|vibes
    graphrec serve [--host 127.0.0.1] [--port 8000] [--workers 1] [--poll-seconds 1] [--candidates 200] [--people-candidates 50] [--access-log]
    graphrec releases [--json]
    graphrec rollback RELEASE
    graphrec sql "SELECT count(*) FROM interactions" [--csv]
    graphrec --version

``--data-dir`` defaults as everywhere else (``$GRAPHREC_DATA_DIR``, else ``./data``); it may
be an ``s3://bucket/prefix`` (``--endpoint-url`` or ``$AWS_ENDPOINT_URL`` for MinIO and other
S3-compatible stores). Queries
read the live release; ``serve`` answers them over HTTP (``serving/http_api.py``) and
follows the live release without a restart. A bad query, or missing, stale or corrupt assets print one line on
stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys

from graphrec_pipeline.defaults import PEOPLE_CANDIDATES, RETRIEVAL_CANDIDATES
from graphrec_pipeline.releases import DataDir, LockHeld, ReleaseError
from graphrec_pipeline.serving.http_guards import MAX_BODY_BYTES
from graphrec_pipeline.serving.query import AssetError, PeopleQuery, PlaceQuery, QueryError
from graphrec_pipeline.storage import StorageUnavailable, UnreadableFile
from graphrec_pipeline.taxonomy import CITIES, COARSE_CATEGORIES, FINE_TAGS, TIME_SLOTS, VIBE_TAGS
from graphrec_pipeline.vocabulary import TAXONOMY, Vocabulary

EXIT_USAGE = 2
VOCABULARIES = {"tags": FINE_TAGS, "categories": COARSE_CATEGORIES, "time-slots": TIME_SLOTS,
                "cities": CITIES, "vibes": VIBE_TAGS}


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line (``graphrec: error: ...``), exit status 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"graphrec: error: {message}\n")


def _version() -> str:
    """The installed package's version (``pyproject.toml``), or "unknown" outside an install."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("graphrec-pipeline")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", default=argparse.SUPPRESS,
                        help="data directory or s3://bucket/prefix (default: $GRAPHREC_DATA_DIR or ./data)")
    common.add_argument("--endpoint-url", default=argparse.SUPPRESS,
                        help="S3-compatible endpoint for an s3:// data dir (default: $AWS_ENDPOINT_URL, else AWS)")
    parser = OneLineParser(prog="graphrec", description=__doc__.split("\n\n")[0], parents=[common])
    parser.add_argument("--version", action="version", version=f"graphrec {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    recommend = commands.add_parser("recommend", help="recommend places or people for a user")
    kinds = recommend.add_subparsers(dest="kind", required=True, parser_class=OneLineParser)
    query = argparse.ArgumentParser(add_help=False, parents=[common])
    who = query.add_mutually_exclusive_group(required=True)
    who.add_argument("--user-id", type=int, help="the user's id")
    who.add_argument("--user-key", help="the user's key in an imported log")
    query.add_argument("-k", type=int, default=10, help="number of results, 1..200 (default 10)")
    query.add_argument("--city-id", type=int, help="city to recommend in (default: the user's home city)")
    query.add_argument("--json", action="store_true", help="print a JSON array instead of a table")

    places = kinds.add_parser("places", parents=[query], help="places to go (§6.3)")
    places.add_argument("--time-slot", help=f"one of {', '.join(TIME_SLOTS)}")
    places.add_argument("--tags", help="comma-separated fine tags, e.g. jazz,techno (context)")
    places.add_argument("--categories", help="comma-separated categories (filter and context)")
    places.add_argument("--max-price", type=int, help="highest price band, 0 (free) .. 4 (luxury)")

    people = kinds.add_parser("people", parents=[query], help="people to go out with (§6.4)")
    people.add_argument("--target-place-id", type=int, help="the place of the outing (context)")
    people.add_argument("--activity-tags", help="comma-separated fine tags of the outing (context)")
    people.add_argument("--new-people", action="store_true",
                        help="only people the user has never been out with")

    listing = commands.add_parser("list", parents=[common], help="valid names for queries (the live release's "
                                  "own, for an imported log)")
    listing.add_argument("what", choices=sorted(VOCABULARIES))
    listing.add_argument("--json", action="store_true", help="print a JSON array instead of one name a line")

    serve = commands.add_parser("serve", parents=[common], help="answer queries over HTTP (FastAPI on uvicorn)")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="server processes, each with its own copy (default 1)")
    serve.add_argument("--poll-seconds", type=float, default=1.0, help="how often to look for a new live release")
    serve.add_argument("--access-log", action="store_true", help="log every request (off: it costs CPU per request)")
    serve.add_argument("--max-body-bytes", type=int, default=MAX_BODY_BYTES,
                       help=f"larger request bodies get a 413 (default {MAX_BODY_BYTES:,}); to require a bearer "
                       "token, set GRAPHREC_SERVE_TOKEN in the environment (never on the command line)")
    serve.add_argument("--candidates", type=int, default=RETRIEVAL_CANDIDATES,
                       help=f"M, places scored per query (default {RETRIEVAL_CANDIDATES}, what eval_metrics measures; "
                       "fewer is faster)")
    serve.add_argument("--people-candidates", type=int, default=PEOPLE_CANDIDATES,
                       help=f"M of the people flow (default {PEOPLE_CANDIDATES}, what eval_metrics measures)")

    releases = commands.add_parser("releases", parents=[common], help="complete releases, newest first")
    releases.add_argument("--json", action="store_true")
    rollback = commands.add_parser("rollback", parents=[common], help="make an earlier complete release live")
    rollback.add_argument("release", help="a release id from 'graphrec releases'")
    sql = commands.add_parser("sql", parents=[common], help="run SQL over the live release's DuckDB views")
    sql.add_argument("query", help="one SQL statement; the views are the published tables")
    sql_format = sql.add_mutually_exclusive_group()
    sql_format.add_argument("--csv", action="store_true", help="print CSV instead of a table")
    sql_format.add_argument("--json", action="store_true", help="print a JSON array of rows instead of a table")
    sql.add_argument("--allow-write", action="store_true", help="run statements that write files (COPY, EXPORT)")
    return parser


READ_STATEMENTS = ("SELECT", "EXPLAIN", "PRAGMA", "CALL")


def _sql(data: DataDir, query: str, as_csv: bool, allow_write: bool = False, as_json: bool = False) -> None:
    """The query on a read-only connection (a local or object-store data dir alike). The
    database cannot change, but COPY or EXPORT would write files: statements other than
    :data:`READ_STATEMENTS` need ``--allow-write``."""
    import duckdb

    try:
        kinds = [s.type.name for s in duckdb.extract_statements(query)]
    except duckdb.Error as err:
        raise QueryError(f"sql: {str(err).splitlines()[0]}") from None
    writing = sorted({k for k in kinds if k not in READ_STATEMENTS})
    if writing and not allow_write:
        raise QueryError(f"sql: {', '.join(writing)} may write files; pass --allow-write to run it "
                         f"(allowed without it: {', '.join(READ_STATEMENTS)})")
    con = data.connect()
    try:
        result = con.sql(query)
        if result is None:
            return
        frame = result.pl()
    except duckdb.Error as err:
        raise QueryError(f"sql: {str(err).splitlines()[0]}") from None
    finally:
        con.close()
    if as_csv:
        sys.stdout.write(frame.write_csv())
    elif as_json:
        sys.stdout.write(frame.write_json() + "\n")  # a list of row objects
    else:
        import polars as pl

        with pl.Config(tbl_rows=50, tbl_cols=20, fmt_str_lengths=60):
            print(frame)


def _releases(data: DataDir, as_json: bool) -> None:
    rows = data.releases()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        metrics = " ".join(f"{k}={v}" for k, v in sorted(r["metrics"].items()))
        refused = f"  REFUSED: {'; '.join(r['refused'])}" if r["refused"] else ""
        print(f"{'*' if r['live'] else ' '} {r['release']}  {r['created']}  {metrics}{refused}")


def _rollback(data: DataDir, release: str) -> None:
    """Switch the pointer under the lock, so no run switches at the same moment; a bad or
    incomplete release is refused before the lock is taken (and debris cleaned)."""
    data.verify(release)
    owner = f"rollback-{os.getpid()}"
    data.acquire(owner)
    try:
        data.switch(release)
    finally:
        data.release_lock(owner)
    print(f"release {release} is live")


def _serve(data: DataDir, args: argparse.Namespace) -> None:
    """uvicorn over :func:`create_app` with the options as its arguments: one process, or
    ``--workers`` processes that each build the same app from the same arguments."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from graphrec_pipeline.serving.http_api import create_app
    from graphrec_pipeline.serving.http_protocol import json_errors_protocol

    m = (args.candidates, args.people_candidates)
    if args.workers < 1 or not 0 < args.port < 65536 or args.poll_seconds <= 0 or not all(10 <= x <= 1000 for x in m):
        raise QueryError(f"serve: need --workers >= 1, --port in 1..65535, --poll-seconds > 0 and --candidates and "
                         f"--people-candidates in 10..1000, not {args.workers}, {args.port}, {args.poll_seconds}, "
                         f"{args.candidates}, {args.people_candidates}")
    if args.max_body_bytes < 1:
        raise QueryError(f"serve: need --max-body-bytes >= 1, not {args.max_body_bytes}")
    # A partial of a module-level function: the workers (spawned processes) unpickle it.
    app = functools.partial(create_app, data.location.url(), endpoint_url=getattr(data.location, "endpoint_url", None),
                            poll_seconds=args.poll_seconds, candidates=args.candidates,
                            people_candidates=args.people_candidates, max_body_bytes=args.max_body_bytes)
    config = uvicorn.Config(app, factory=True, host=args.host, port=args.port, workers=args.workers, log_level="info",
                            access_log=args.access_log, timeout_keep_alive=30, http=json_errors_protocol())
    if config.workers > 1:
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        uvicorn.Server(config).run()


def _table(kind: str, results) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=False)
    if kind == "places":
        for col in ("#", "place_id", "key", "name", "neighborhood", "price", "score", "why"):
            table.add_column(col, overflow="fold")
        for i, r in enumerate(results, 1):
            table.add_row(str(i), str(r.place_id), r.place_key, r.name, r.neighborhood, str(r.price_band), f"{r.score:.3f}",
                          " ".join(r.explanations))
    else:
        for col in ("#", "user_id", "key", "s_final", "s_compat", "p_attend", "why"):
            table.add_column(col, overflow="fold")
        for i, r in enumerate(results, 1):
            table.add_row(str(i), str(r.user_id), r.user_key, f"{r.s_final:.3f}", f"{r.s_compat:.3f}", f"{r.p_attend:.3f}",
                          " ".join(r.explanations))
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    console.print(table)


def _names(data: DataDir, what: str) -> list[str]:
    """The live release's own vocabulary (an imported log's) where it has one, else the taxonomy."""
    release = data.live_id() if what in ("tags", "categories", "cities") else None
    store = data.storage(release) if release is not None else None
    if store is None or not store.exists("vocabulary"):
        return list(VOCABULARIES[what])
    vocabulary = Vocabulary.from_table(store.read_table("vocabulary"))
    return list({"tags": vocabulary.tags, "categories": vocabulary.categories, "cities": vocabulary.cities}[what])


def run(args: argparse.Namespace) -> int:
    data = DataDir.at(getattr(args, "data_dir", None), getattr(args, "endpoint_url", None))
    if args.command == "list":
        names = _names(data, args.what)
        print(json.dumps(names) if args.json else "\n".join(names))
        return 0
    data.location.check()
    if args.command == "sql":
        _sql(data, args.query, args.csv, args.allow_write, args.json)
        return 0
    if args.command == "releases":
        _releases(data, args.json)
        return 0
    if args.command == "rollback":
        _rollback(data, args.release)
        return 0
    if args.command == "serve":
        _serve(data, args)
        return 0
    from rich.console import Console

    from graphrec_pipeline.serving.recommender import Recommender
    from graphrec_pipeline.serving.threads import limit_threads

    store = data.live()
    vocabulary = Vocabulary.from_table(store.read_table("vocabulary")) if store.exists("vocabulary") else TAXONOMY
    if args.kind == "places":  # parsed before the release loads: a typo fails fast
        query = PlaceQuery.parse(k=args.k, city_id=args.city_id, time_slot=args.time_slot, categories=args.categories,
                                 tags=args.tags, max_price=args.max_price, vocabulary=vocabulary)
    else:
        query = PeopleQuery.parse(k=args.k, city_id=args.city_id, target_place_id=args.target_place_id,
                                  activity_tags=args.activity_tags, new_people=args.new_people, vocabulary=vocabulary)
    limit_threads(1)
    with Console(stderr=True).status(f"Loading release {store.release} from {data.location}"):
        recommender = Recommender(store)
    answer = recommender.recommend_places if args.kind == "places" else recommender.recommend_people
    user_id = args.user_id if args.user_key is None else int(recommender.user_ids([args.user_key])[0])
    results = answer(user_id, query)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        _table(args.kind, results)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (QueryError, AssetError, ReleaseError, LockHeld, FileNotFoundError, StorageUnavailable,
            UnreadableFile) as err:
        print(f"graphrec: error: {err}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
