"""Measure scoring, pipeline and collection throughput of the default setup against references in the same run.

Scoring: texts per second of the default classifier (start-up excluded), against a BERT-base-size encoder
(12 layers, hidden 768, the size of BERTje and RobBERT) run with torch on the same texts and threads. The reference
has random weights: its speed is that of the architecture, whatever it learned, and nothing is downloaded. Two ways
of calling, each measured for both: calls of one batch (--batch texts, padded to the longest of them), and one call
with all texts, as the pipeline scores a run's new mentions, where each side sorts the texts by length into batches.
Pipeline: mentions stored per second with the default classifier, against the same pipeline with a classifier that
costs nothing (the storage ceiling).
Collection: mentions stored per second from fake X, Mastodon and Bluesky servers on loopback (real HTTP, payloads
shaped like each API) holding --collect-posts posts, with the free classifier so that collection itself is measured,
against the file source reading the same number of posts from disk.

Alerts (--alerts-only, or --alerts with the rest): seconds from the commit of a batch holding a threat to the alert
handed to a loopback SMTP server (aiosmtpd), against a bare smtplib send of the same message (the floor).
Digest (--digest-only, or --digest): seconds to build one day's digest from a generated database of
--digest-mentions stored mentions (monitor/synthetic.py), the digest of one day's collection window, its trend
data and its mail with a chart per official, against the same digests on a copy without this release's digest
indexes (today's query plan).
Review desk (--desk-queue, on its own): time to first byte of the queue page over loopback HTTP (uvicorn, a logged-in
session) on a synthetic database of --desk-mentions mentions (monitor/synthetic.py), for an admin (every official)
and a reviewer of 5 officials, against the login page on the same server (the framework's own floor).
Exports and the report (--export-mentions N, --report-mentions N; only these run then): seconds for
`weerbaar export` (JSONL and Parquet) and `weerbaar report` on a generated database of N mentions
(monitor/synthetic.py), against reading every mention's text and writing it unmasked as JSONL (the floor); with
the CPU seconds beside each, since on a shared machine the wall time says more about the neighbours.


    .venv/bin/python scripts/benchmark.py [--texts 512] [--mentions 1000] [--collect-posts 100000] [--skip-reference]
        [--model weerbaar-onnx --model-path models/weerbaar-e5-ft] [--scoring-only]
        [--alerts] [--alerts-only] [--digest] [--digest-only] [--digest-mentions 1000000]
    .venv/bin/python scripts/benchmark.py --desk-queue [--desk-mentions 100000]
    .venv/bin/python scripts/benchmark.py --export-mentions 1000000 --report-mentions 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from monitor.classifier import load_classifier  # noqa: E402
from monitor.db import open_db  # noqa: E402
from monitor.mentions import MentionError  # noqa: E402
from monitor.officials import import_officials  # noqa: E402
from monitor.pipeline import run_once  # noqa: E402
from monitor.settings import FileSourceSettings, load_settings  # noqa: E402
from scrapers.files import parse_generic  # noqa: E402

SAMPLE = REPO / "config" / "samples" / "mentions.jsonl"
OFFICIALS = REPO / "config" / "samples" / "officials.csv"


def sample_records() -> list[dict]:
    """Return the records of the bundled sample that make valid mentions."""
    records = []
    for raw in SAMPLE.read_bytes().splitlines():
        try:
            record = json.loads(raw.decode("utf-8"))
            parse_generic(record, raw)
        except (UnicodeDecodeError, json.JSONDecodeError, MentionError):
            continue
        records.append(record)
    return records


def texts_for(n: int) -> list[str]:
    """Return N realistic texts cycled from the sample (cut to 1,000 characters like typical posts)."""
    texts = [r["text"][:1000] for r in sample_records()]
    return [texts[i % len(texts)] for i in range(n)]


def time_scoring(score, texts: list[str], batch: int, one_call: bool = False) -> float:
    """Return texts per second of SCORE over TEXTS, after one warm-up batch: calls of BATCH texts, or ONE_CALL."""
    score(texts[:batch])
    start = time.perf_counter()
    if one_call:
        score(texts)
    else:
        for i in range(0, len(texts), batch):
            score(texts[i : i + batch])
    return len(texts) / (time.perf_counter() - start)


def bert_base_reference(texts: list[str], batch: int) -> tuple[float, float] | None:
    """Return texts per second of a BERT-base-size encoder on TEXTS, in calls of BATCH and in one call; None without
    torch and transformers.

    Like the default classifier, it sorts the texts of one call by length and runs them in batches of BATCH.
    """
    try:
        import torch
        from transformers import BertConfig, BertModel
    except ImportError:
        return None
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=40000, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                 intermediate_size=3072, max_position_embeddings=512)).eval()
    # A word-piece tokenizer gives about 1.4 tokens a word on Dutch posts; whitespace splitting stands in for it.
    def score(chunk):
        lengths = sorted(min(512, max(2, int(len(t.split()) * 1.4) + 2)) for t in chunk)
        for start in range(0, len(lengths), batch):
            part = lengths[start : start + batch]
            ids = torch.randint(5, 40000, (len(part), max(part)))
            mask = torch.zeros_like(ids)
            for row, length in enumerate(part):
                mask[row, :length] = 1
            with torch.inference_mode():
                model(input_ids=ids, attention_mask=mask)
    return time_scoring(score, texts, batch), time_scoring(score, texts, batch, one_call=True)


class FreeClassifier:
    """A classifier that costs nothing: the ceiling the pipeline could reach."""

    name, version, categories = "free", "0", ("aggression", "threat")

    def score(self, texts):
        """Return zero for every category."""
        return [{"aggression": 0.0, "threat": 0.0} for _ in texts]


def pipeline_rate(classifier, n: int, workdir: Path) -> float:
    """Return mentions stored per second by one pipeline run over N fresh mentions."""
    records = sample_records()
    path = workdir / f"mentions-{classifier.name}.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            record = dict(records[i % len(records)], id=f"bench-{i}")
            if record["platform"] == "bluesky":
                record["id"] = f"at://did:plc:bench/app.bsky.feed.post/{i}"
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    settings = load_settings(REPO / "config" / "weerbaar.toml", db_path=workdir / f"bench-{classifier.name}.db")
    settings.sources = {"bench": FileSourceSettings(type="file", path=str(path))}
    db = open_db(settings.db_path)
    import_officials(db, OFFICIALS)
    start = time.perf_counter()
    [run] = run_once(db, settings, classifier)
    elapsed = time.perf_counter() - start
    assert run.new == db["mentions"].count, run
    return run.new / elapsed


def collection_rate(platform: str, n: int, workdir: Path) -> float:
    """Return mentions stored per second by one run against a fake PLATFORM server holding N posts."""
    from monitor.settings import Settings
    from tests.fakes import serve_fake_posts
    from tests.fakes.fixtures import add_official

    with serve_fake_posts(platform, n) as feed:
        os.environ.update(feed.environment)
        db = open_db(workdir / f"collect-{platform}.db")
        add_official(db, f"Bench {platform}", **{platform: feed.handle})
        if platform == "mastodon":  # the fake's feed is the mention notifications of an authorised account
            db.execute("UPDATE accounts SET authorised = 1")
            db.conn.commit()
        settings = Settings(db_path=workdir / f"collect-{platform}.db", sources={platform: feed.source})
        start = time.perf_counter()
        [run] = run_once(db, settings, FreeClassifier())
        elapsed = time.perf_counter() - start
    if run.new != n:
        raise RuntimeError(f"{platform}: stored {run.new} of {n} posts ({run.status}: {run.error})")
    return run.new / elapsed


def alert_latency(workdir: Path, rounds: int = 20) -> tuple[list[float], list[float]]:
    """Return seconds from commit to the alert reaching a loopback SMTP server, per round; and bare smtplib sends."""
    import smtplib

    from monitor.mail import Mail, build_message
    from monitor.settings import Settings
    from tests.fakes.classifiers import KeywordClassifier
    from tests.fakes.smtp_server import LoopbackSMTP

    server = LoopbackSMTP().start()
    arrivals: list[float] = []
    original = server.handler.handle_DATA

    async def timed(srv, session, envelope):
        arrivals.append(time.time())
        return await original(srv, session, envelope)

    server.handler.handle_DATA = timed
    try:
        db = open_db(workdir / "alerts.db")
        import_officials(db, OFFICIALS)
        posts = workdir / "alert-posts.jsonl"
        settings = Settings(
            db_path=workdir / "alerts.db", sources={"bench": SourceSettings(type="file", path=str(posts))},
            mail={"host": "127.0.0.1", "port": server.port, "sender": "weerbaar@bench.example"},
            alerts={"recipients": ["desk@bench.example"]}, classifier={"model": "test-keywords"},
        )
        latencies = []
        with posts.open("w", encoding="utf-8") as out:
            for i in range(rounds):
                # A batch of 100 ordinary posts with one threat in it, appended for each round.
                for j in range(99):
                    out.write(json.dumps({"platform": "x", "id": f"r{i}-{j}", "text": "@AnnekeVisserZw vraag",
                                          "created_at": "2026-11-30T09:00:00Z"}) + "\n")
                out.write(json.dumps({"platform": "x", "id": f"r{i}-t", "text": "@AnnekeVisserZw ik maak je af",
                                      "created_at": "2026-11-30T09:00:00Z"}) + "\n")
                out.flush()
                before = len(arrivals)
                run_once(db, settings, KeywordClassifier())
                committed = db.execute(
                    "SELECT max(collected_at) FROM mentions WHERE post_id = ?", [f"r{i}-t"]).fetchone()[0]
                committed_at = dt.datetime.fromisoformat(committed.replace("Z", "+00:00")).timestamp()
                if len(arrivals) != before + 1:
                    raise RuntimeError(f"round {i}: {len(arrivals) - before} alerts arrived, expected 1")
                latencies.append(arrivals[-1] - committed_at)
        message = build_message(Mail("bench", "tekst", "<p>tekst</p>"), "weerbaar@bench.example",
                                "desk@bench.example", "bench")
        floor = []
        for _ in range(rounds):
            start = time.time()
            with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
                client.sendmail("weerbaar@bench.example", ["desk@bench.example"], message.as_bytes())
            floor.append(arrivals[-1] - start)
        return latencies, floor
    finally:
        server.stop()


def digest_timings(path: Path, mentions: int) -> dict[str, float]:
    """Return seconds to build digests from a generated database of MENTIONS mentions (generated at PATH if absent)."""
    import shutil
    import sqlite3

    from monitor.digest_mail import add_trends
    from monitor.digests import build_collected_digest, build_digest
    from monitor.settings import Settings
    from monitor.synthetic import SyntheticSpec, generate_database

    spec = SyntheticSpec(mentions=mentions)
    if not path.exists():
        start = time.perf_counter()
        generate_database(path, spec)
        print(f"digest, generated {mentions} mentions in {time.perf_counter() - start:.1f} s ({path})")
    settings = Settings(db_path=path, sources={p: {"type": "file", "path": "-"} for p in ("x", "mastodon", "bluesky")})
    model = (spec.model, spec.model_version)
    day = spec.end - dt.timedelta(days=1)

    def best_of(fn, repeat=3) -> float:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    db = open_db(path)
    figures = {"posting day": best_of(lambda: build_digest(db, settings, day, model))}
    until = f"{day.isoformat()}T23:00:00.000000Z"
    since = f"{(day - dt.timedelta(days=1)).isoformat()}T23:00:00.000000Z"
    figures["collected window"] = best_of(lambda: build_collected_digest(db, settings, since, until, model))
    digest = build_collected_digest(db, settings, since, until, model)
    figures["trend data"] = best_of(lambda: add_trends(db, settings, digest, model))
    from monitor.digest_mail import digest_mail

    figures["mail, a chart per official"] = best_of(lambda: digest_mail(settings, digest), repeat=1)
    db.close()
    # Today's plan: the same digest on a copy without this release's digest indexes.
    reference = path.with_name(path.stem + "-reference.db")
    shutil.copy(path, reference)
    conn = sqlite3.connect(reference)
    conn.execute("DROP INDEX mentions_collected")
    conn.execute("DROP INDEX mentions_source_created")
    conn.execute("DROP INDEX mentions_source_collected")
    conn.commit()
    conn.close()
    db = open_db(reference)
    db.execute("DELETE FROM _sqlite_migrations WHERE name = 'm204_digest_indexes'")
    db.conn.commit()
    db.conn.close()
    import sqlite_utils

    db = sqlite_utils.Database(reference)  # not open_db: that would put the indexes back
    figures["posting day, without the new indexes"] = best_of(lambda: build_digest(db, settings, day, model))
    figures["collected window, without the new indexes"] = best_of(
        lambda: build_collected_digest(db, settings, since, until, model), repeat=1)
    db.close()
    reference.unlink()
    return figures


def desk_queue_benchmark(mentions: int, workdir: Path, requests: int = 15) -> None:
    """Print the queue page's time to first byte at MENTIONS mentions, against the login page, over loopback HTTP."""
    import http.client
    import re
    import socket
    import statistics
    import threading

    import uvicorn

    from monitor.synthetic import SyntheticSpec, generate_database
    from monitor.users import add_user
    from monitor.web import create_app

    db_path = workdir / "desk.db"
    start = time.perf_counter()
    counts = generate_database(db_path, SyntheticSpec(mentions=mentions))
    db = open_db(db_path)
    # A desk in use: a review on one mention in fifty (confirmed, dismissed or claimed), each in its own row.
    statuses = ("confirmed", "dismissed", "in_review")
    db.conn.executemany(
        "INSERT INTO reviews (mention_id, reviewer, labels, status, reviewed_at) VALUES (?, 'bench', '[]', ?, "
        "'2026-11-30T12:00:00Z')", [(i, statuses[i % 3]) for i in range(1, counts["mentions"] + 1, 50)])
    db.conn.commit()
    add_user(db, "admin", "admin", "benchmark-password")
    add_user(db, "reviewer", "reviewer", "benchmark-password", [1, 2, 3, 4, 5])
    db.close()
    print(f"desk database: {counts['mentions']:,} mentions, {counts['officials']} officials, built in "
          f"{time.perf_counter() - start:.1f} s")
    settings = load_settings(REPO / "config" / "weerbaar.toml", db_path=db_path)
    app = create_app(settings, ("weerbaar-onnx", "synthetic"), secret="benchmark-secret-" + "z" * 20)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)

    def get(path: str, cookie: str = "") -> tuple[float, int, str, str]:
        connection = http.client.HTTPConnection("127.0.0.1", port)
        began = time.perf_counter()
        connection.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        response = connection.getresponse()  # returns once the status line and headers arrived: the first byte
        first_byte = time.perf_counter() - began
        body = response.read().decode()
        connection.close()
        return first_byte, response.status, body, response.getheader("set-cookie") or ""

    def session(username: str) -> str:
        _, _, page, cookie = get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        cookie = cookie.split(";")[0]
        connection = http.client.HTTPConnection("127.0.0.1", port)
        form = f"username={username}&password=benchmark-password&csrf_token={token}&next=/queue"
        connection.request("POST", "/login", body=form, headers={
            "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
        response = connection.getresponse()
        response.read()
        assert response.status == 303, response.status
        return response.getheader("set-cookie").split(";")[0]

    def median_ms(path: str, cookie: str = "") -> tuple[float, float]:
        get(path, cookie)  # warm the page cache and the templates
        times = sorted(get(path, cookie)[0] for _ in range(requests))
        return statistics.median(times) * 1000, times[-1] * 1000

    try:
        admin, reviewer = session("admin"), session("reviewer")
        rows = [
            ("login page (reference)", "/login", ""),
            ("queue, admin (all officials)", "/queue", admin),
            ("queue, admin, page 20", "/queue?page=20", admin),
            ("queue, admin, one official", "/queue?official=7", admin),
            ("queue, admin, threats only", "/queue?category=threat", admin),
            ("queue, admin, confirmed", "/queue?status=confirmed", admin),
            ("queue, reviewer of 5 officials", "/queue", reviewer),
        ]
        reference = None
        for label, path, cookie in rows:
            median, worst = median_ms(path, cookie)
            reference = reference or median
            print(f"desk, {label + ':':<34}{median:8.1f} ms to first byte (median of {requests}; slowest "
                  f"{worst:.1f} ms; {median / reference:6.1f}x the login page)")
    finally:
        server.should_exit = True
        thread.join(10)


def _cpu_seconds() -> float:
    """Return the CPU seconds used by this process and its finished children (the export's workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def research_timings(export_mentions: int, report_mentions: int, workdir: Path) -> None:
    """Print seconds for exports and the report on generated databases, against an unmasked JSONL dump."""
    import datetime as dt

    from monitor.exports import ExportFilters, Sampling, export_dataset
    from monitor.reports import build_report, write_report
    from monitor.synthetic import SyntheticSpec, generate_database

    settings = load_settings(REPO / "config" / "weerbaar.toml")
    key = b"benchmark-key-of-enough-length"
    model = ("weerbaar-onnx", "synthetic")
    databases: dict[int, Path] = {}
    for n in sorted({m for m in (export_mentions, report_mentions) if m}):
        path = workdir / f"synthetic-{n}.db"
        start = time.perf_counter()
        generate_database(path, SyntheticSpec(mentions=n))
        print(f"synthetic database:             {time.perf_counter() - start:8.1f} s to generate {n} mentions")
        databases[n] = path
    if export_mentions:
        db = open_db(databases[export_mentions])
        start, cpu = time.perf_counter(), _cpu_seconds()
        with (workdir / "floor.jsonl").open("w", encoding="utf-8") as out:
            for row in db.execute("SELECT id, platform, created_at, text FROM mentions ORDER BY id"):
                out.write(json.dumps({"id": row[0], "platform": row[1], "created_at": row[2], "text": row[3]},
                                     ensure_ascii=False) + "\n")
        floor = time.perf_counter() - start
        print(f"export, unmasked JSONL dump:    {floor:8.1f} s ({export_mentions} mentions, reference; "
              f"{_cpu_seconds() - cpu:.1f} CPU s)")
        for fmt, workers in (("jsonl", 1), ("parquet", 1), ("jsonl", 2)):
            start, cpu = time.perf_counter(), _cpu_seconds()
            result = export_dataset(db, workdir / f"export-{fmt}-{workers}", settings, key, fmt, ExportFilters(),
                                    Sampling(), model, workers=workers)
            elapsed, used = time.perf_counter() - start, _cpu_seconds() - cpu
            print(f"export, {fmt + ',':<8} {workers} worker(s): {elapsed:8.1f} s ({result.rows} mentions; "
                  f"{elapsed / floor:.1f}x the dump; {used:.1f} CPU s, workers included)")
        db.close()
    if report_mentions:
        db = open_db(databases[report_mentions])
        spec = SyntheticSpec()
        start, cpu = time.perf_counter(), _cpu_seconds()
        report = build_report(db, settings, spec.end - dt.timedelta(days=spec.days - 1), spec.end, model)
        write_report(report, workdir / "report" / "report.html")
        print(f"report, weerbaar report html:   {time.perf_counter() - start:8.1f} s ({report_mentions} mentions; "
              f"{_cpu_seconds() - cpu:.1f} CPU s)")
        db.close()


def main() -> None:
    """Run the benchmarks and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=512, help="texts to score (default 512)")
    parser.add_argument("--mentions", type=int, default=1000, help="mentions through the pipeline (default 1000)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--skip-reference", action="store_true", help="skip the BERT-base-size reference")
    parser.add_argument("--collect-posts", type=int, default=100_000, help="posts on each fake server (default 100000)")
    parser.add_argument("--collect-platforms", default="x,bluesky,mastodon", help="fake servers to collect from")
    parser.add_argument("--mastodon-posts", type=int, default=10_000,
                        help="posts on the fake Mastodon server (default 10000: Mastodon.py costs ~8 ms a post)")
    parser.add_argument("--model", help="classifier backend to measure instead of the settings' default")
    parser.add_argument("--model-path", type=Path, help="model folder for --model")
    parser.add_argument("--scoring-only", action="store_true", help="measure scoring only, not pipeline or collection")
    parser.add_argument("--alerts", action="store_true", help="also measure commit-to-SMTP time of a threat alert")
    parser.add_argument("--alerts-only", action="store_true", help="measure only the threat alert latency")
    parser.add_argument("--digest", action="store_true", help="also measure building a digest on a large database")
    parser.add_argument("--digest-only", action="store_true", help="measure only the digest build")
    parser.add_argument("--digest-mentions", type=int, default=1_000_000, help="mentions in the generated database")
    parser.add_argument("--digest-db", type=Path, help="generated database to reuse (made there if absent)")
    parser.add_argument("--desk-queue", action="store_true",
                        help="measure only the review desk's queue page (time to first byte)")
    parser.add_argument("--desk-mentions", type=int, default=100_000,
                        help="mentions in the desk's synthetic database (default 100000)")
    parser.add_argument("--export-mentions", type=int, default=0, metavar="N",
                        help="time `weerbaar export` on a generated database of N mentions (only research timings run)")
    parser.add_argument("--report-mentions", type=int, default=0, metavar="N",
                        help="time `weerbaar report` on a generated database of N mentions (only research timings run)")
    args = parser.parse_args()
    if args.alerts or args.alerts_only:
        with tempfile.TemporaryDirectory() as tmp:
            latencies, floor = alert_latency(Path(tmp))
        latencies.sort()
        floor.sort()
        print(f"alerts, commit to SMTP server:  median {latencies[len(latencies) // 2]:.3f} s, worst {latencies[-1]:.3f} s "
              f"over {len(latencies)} runs (goal: under 5 s)")
        print(f"alerts, bare smtplib send:      median {floor[len(floor) // 2]:.3f} s (reference: the SMTP round trip)")
    if args.digest or args.digest_only:
        with tempfile.TemporaryDirectory() as tmp:
            path = args.digest_db or Path(tmp) / "synthetic.db"
            for name, seconds in digest_timings(path, args.digest_mentions).items():
                print(f"digest, {name + ':':<43}{seconds:7.3f} s ({args.digest_mentions} mentions)")
    if args.export_mentions or args.report_mentions:
        with tempfile.TemporaryDirectory() as tmp:
            research_timings(args.export_mentions, args.report_mentions, Path(tmp))
        return
    if args.desk_queue:
        with tempfile.TemporaryDirectory() as tmp:
            desk_queue_benchmark(args.desk_mentions, Path(tmp))
        return
    if args.alerts_only or args.digest_only:
        return
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the fake servers' request log

    settings = load_settings(REPO / "config" / "weerbaar.toml")
    if args.model:
        settings.classifier.model = args.model
    if args.model_path:
        settings.classifier.model_path = args.model_path
    start = time.perf_counter()
    classifier = load_classifier(settings)
    classifier.score(["opwarmen"])
    startup = time.perf_counter() - start
    texts = texts_for(args.texts)
    print(f"threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, cpus={os.cpu_count()}")
    print(f"default model {classifier.name}@{classifier.version}: start-up {startup:.2f} s")
    rate = time_scoring(classifier.score, texts, args.batch)
    sorted_rate = time_scoring(classifier.score, texts, args.batch, one_call=True)
    # Peak resident memory of this process so far: the model, its runtime and the scoring, before any reference.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"scoring, default model:         {rate:8.1f} texts/s in calls of {args.batch}, {sorted_rate:8.1f} in one "
          f"call sorted by length ({len(texts)} texts; peak RSS {peak:.0f} MiB)")
    if not args.skip_reference:
        rates = bert_base_reference(texts, args.batch)
        if rates is None:
            print("scoring, BERT-base reference:  skipped (install torch and transformers)")
        else:
            reference, sorted_reference = rates
            print(f"scoring, BERT-base reference:   {reference:8.1f} texts/s in calls of {args.batch}, "
                  f"{sorted_reference:8.1f} in one call sorted by length")
            print(f"scoring, default / reference:   {rate / reference:8.1f}x in calls of {args.batch}, "
                  f"{sorted_rate / sorted_reference:8.1f}x in one call sorted by length")
    if args.scoring_only:
        return
    with tempfile.TemporaryDirectory() as tmp:
        stored = pipeline_rate(classifier, args.mentions, Path(tmp))
        ceiling = pipeline_rate(FreeClassifier(), args.mentions, Path(tmp))
    print(f"pipeline, default model:        {stored:8.1f} mentions stored/s ({args.mentions} mentions)")
    print(f"pipeline, free classifier:      {ceiling:8.1f} mentions stored/s (storage ceiling)")
    with tempfile.TemporaryDirectory() as tmp:
        reference = pipeline_rate(FreeClassifier(), args.collect_posts, Path(tmp))
        print(f"collection, file source:        {reference:8.1f} mentions stored/s ({args.collect_posts} posts, reference)")
        for platform in [p for p in args.collect_platforms.split(",") if p]:
            n = args.mastodon_posts if platform == "mastodon" else args.collect_posts
            rate = collection_rate(platform, n, Path(tmp))
            print(f"collection, fake {platform + ':':<14}{rate:8.1f} mentions stored/s ({n} posts over loopback HTTP)")


if __name__ == "__main__":
    main()
