"""The long-running service: collect from each source on its interval and write the digest every morning.

APScheduler 3 runs the jobs in a small thread pool. Each job opens its own database connection, because a SQLite
connection must not be shared between threads. SIGTERM or SIGINT sets a stop event: running collectors finish and
commit the batch they are on, then the process exits cleanly; the next start resumes from the stored cursors.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from .classifier import Classifier, load_classifier
from .alerts import queue_spike_alerts, send_alerts
from .db import open_db
from .digest_mail import run_scheduled_digest
from .mail import send_pending
from .pipeline import SourceRun, build_sources, run_source
from .settings import Settings
from .watchdog import source_health

log = logging.getLogger(__name__)

DEFAULT_MISFIRE_GRACE_SECONDS = 300
DIGEST_JOB_ID = "digest"
OUTBOX_JOB_ID = "outbox"
COLLECT_JOB_PREFIX = "collect:"
# How often the service retries mail that could not be delivered (server down, 4xx).
OUTBOX_RETRY_MINUTES = 5


def digest_trigger(settings: Settings) -> CronTrigger:
    """Return the daily trigger at `digest.send_at` local time, which stays at that wall-clock time across DST."""
    try:
        hour, minute = (int(part) for part in settings.digest.send_at.split(":"))
        dt.time(hour, minute)
    except ValueError:
        raise ValueError(f"digest.send_at: expected HH:MM, got {settings.digest.send_at!r}") from None
    return CronTrigger(hour=hour, minute=minute, timezone=ZoneInfo(settings.timezone))


class _OneAtATimeClassifier:
    """A classifier shared by the job threads, scoring one batch at a time."""

    # The model is loaded once to save memory and start-up time; model runtimes are not all thread-safe.
    def __init__(self, classifier: Classifier):
        self._classifier = classifier
        self._lock = threading.Lock()
        self.name = classifier.name
        self.version = classifier.version
        self.categories = classifier.categories

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Score TEXTS while holding the lock."""
        with self._lock:
            return self._classifier.score(texts)


class MonitorJobs:
    """The work the scheduler runs: one source's collection, or the daily digest, each on its own connection."""

    def __init__(self, settings: Settings, classifier: Classifier, stop_event: threading.Event | None = None):
        self.settings = settings
        self.classifier = _OneAtATimeClassifier(classifier)
        self.stop_event = stop_event or threading.Event()

    def collect(self, source_name: str) -> SourceRun | None:
        """Run one source once, stopping after the current batch when the service is asked to stop."""
        if self.stop_event.is_set():
            return None
        db = open_db(self.settings.db_path, self.settings.busy_timeout_seconds)
        try:
            (source,) = build_sources(self.settings, db, only=[source_name])
            result = run_source(db, source, self.classifier, self.settings, should_stop=self.stop_event.is_set)
            if result.new and self.settings.mail.configured:
                queue_spike_alerts(db, self.settings, current_model=(self.classifier.name, self.classifier.version))
                send_alerts(db, self.settings)
            log.info(
                "%s: %s; fetched %d, new %d, duplicates %d, quarantined %d",
                source_name, result.status, result.fetched, result.new, result.duplicates, result.quarantined,
            )
            self.warn_about_silent_sources(db)
            return result
        finally:
            db.close()

    def warn_about_silent_sources(self, db) -> None:
        """Log a warning for every source the watchdog finds silent."""
        for health in source_health(db, self.settings):
            if health.silent:
                log.warning("source %s is silent: %s", health.source, health.reason)

    def write_daily_digest(self) -> Path | None:
        """Write and mail today's digest of what was collected since the previous one, once a day; return its text path.

        Also run when the service starts: a digest whose send_at passed while the service was down is made up then.
        """
        db = open_db(self.settings.db_path, self.settings.busy_timeout_seconds)
        try:
            result = run_scheduled_digest(db, self.settings, (self.classifier.name, self.classifier.version))
            self.warn_about_silent_sources(db)
            return result[1] if result else None
        finally:
            db.close()

    def send_queued_mail(self) -> None:
        """Send what is still queued in the outbox (alerts and digests the server could not take earlier)."""
        if not self.settings.mail.configured:
            return
        db = open_db(self.settings.db_path)
        try:
            send_alerts(db, self.settings)
            send_pending(db, self.settings.mail, kinds=("digest",))
        finally:
            db.close()


def _log_job_event(event: JobExecutionEvent) -> None:
    if event.code == EVENT_JOB_ERROR:
        log.error("job %s failed: %r", event.job_id, event.exception, exc_info=event.exception)
    elif event.code == EVENT_JOB_MISSED:
        log.warning(
            "job %s missed its run at %s (the service was busy or down)", event.job_id, event.scheduled_run_time
        )
    elif event.code == EVENT_JOB_MAX_INSTANCES:
        log.warning("job %s is still running; skipped the run at %s", event.job_id, event.scheduled_run_time)


def build_scheduler(
    settings: Settings,
    jobs: MonitorJobs,
    misfire_grace_seconds: int = DEFAULT_MISFIRE_GRACE_SECONDS,
    collect_at_start: bool = True,
) -> BackgroundScheduler:
    """Return a scheduler (not started) with one collect job per enabled source and the daily digest job."""
    zone = ZoneInfo(settings.timezone)
    enabled = {name: config for name, config in settings.sources.items() if config.enabled}
    # One thread per source, so a slow platform never delays another; the digest and the outbox get one each.
    scheduler = BackgroundScheduler(
        timezone=zone,
        executors={"default": ThreadPoolExecutor(max_workers=len(enabled) + 2)},
    )
    scheduler.add_listener(_log_job_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
    start = dt.datetime.now(zone) if collect_at_start else None
    for name, config in enabled.items():
        scheduler.add_job(
            jobs.collect,
            IntervalTrigger(minutes=config.interval_minutes, timezone=zone),
            args=[name],
            id=f"{COLLECT_JOB_PREFIX}{name}",
            name=f"collect {name}",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=misfire_grace_seconds,
            **({"next_run_time": start} if start else {}),
        )
    scheduler.add_job(
        jobs.write_daily_digest,
        digest_trigger(settings),
        id=DIGEST_JOB_ID,
        name="daily digest",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=misfire_grace_seconds,
        # At start too: today's digest is made up when the service was down at send_at (it is made once a day).
        next_run_time=dt.datetime.now(zone),
    )
    scheduler.add_job(
        jobs.send_queued_mail,
        IntervalTrigger(minutes=OUTBOX_RETRY_MINUTES, timezone=zone),
        id=OUTBOX_JOB_ID,
        name="send queued mail",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=misfire_grace_seconds,
    )
    return scheduler


def serve(
    settings: Settings,
    classifier: Classifier | None = None,
    stop_event: threading.Event | None = None,
    misfire_grace_seconds: int = DEFAULT_MISFIRE_GRACE_SECONDS,
    collect_at_start: bool = True,
) -> None:
    """Run the collectors and the digest on their schedule until STOP_EVENT is set or SIGTERM/SIGINT arrives."""
    stop_event = stop_event or threading.Event()
    # Migrate once here, so job threads never race to create the schema; and fail now on a misconfigured source.
    db = open_db(settings.db_path, settings.busy_timeout_seconds)
    try:
        build_sources(settings, db)
    finally:
        db.close()
    classifier = classifier or load_classifier(settings)
    jobs = MonitorJobs(settings, classifier, stop_event)
    scheduler = build_scheduler(settings, jobs, misfire_grace_seconds, collect_at_start)
    previous_handlers = _install_signal_handlers(stop_event)
    try:
        scheduler.start()
        for job in scheduler.get_jobs():
            log.info("scheduled %s; next run %s", job.name, job.next_run_time)
        # Waiting in short steps keeps the main thread responsive to signals on every platform.
        while not stop_event.wait(0.5):
            pass
        log.info("stopping: waiting for running collectors to commit their current batch")
        scheduler.shutdown(wait=True)
        log.info("stopped cleanly")
    finally:
        if scheduler.running:
            scheduler.shutdown(wait=True)
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)


def _install_signal_handlers(stop_event: threading.Event) -> dict:
    """Make SIGTERM and SIGINT set STOP_EVENT; return the handlers they replace."""
    if threading.current_thread() is not threading.main_thread():
        return {}  # signals can only be handled on the main thread; the caller sets stop_event instead

    def request_stop(signum: int, _frame: object) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop_event.set()

    previous = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, request_stop)
    return previous
