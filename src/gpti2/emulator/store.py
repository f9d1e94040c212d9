"""The emulator's SQLite store: accounts with credits, jobs, idempotency keys."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    token_hash TEXT PRIMARY KEY,
    credits INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL,
    prompt TEXT NOT NULL,
    model_id TEXT NOT NULL,
    feature_id TEXT NOT NULL,
    mode TEXT NOT NULL,
    aspect_ratio TEXT NOT NULL,
    created REAL NOT NULL,
    duration REAL NOT NULL,
    will_fail INTEGER NOT NULL,
    cost INTEGER NOT NULL,
    image_count INTEGER NOT NULL,
    status TEXT NOT NULL,
    error TEXT
);
CREATE TABLE IF NOT EXISTS users (
    email TEXT PRIMARY KEY,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    id TEXT NOT NULL,
    user_email TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    token_hash TEXT NOT NULL,
    key TEXT NOT NULL,
    job_id TEXT NOT NULL,
    PRIMARY KEY (token_hash, key)
);
"""

ACTIVE = ("pending", "processing")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def password_hash(email: str, password: str) -> str:
    """A salted, slow hash (the emulator never keeps a password)."""
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), email.lower().encode(), 1000)
    return digest.hex()


@dataclass
class User:
    """An account of the email sign-in (ShipAny dialect)."""

    email: str
    id: str
    name: str
    created: float

    @property
    def owner(self) -> str:
        """The key its jobs and credits are kept under (as a token's are)."""
        return f"user:{self.id}"


@dataclass
class Session:
    """A signed-in session of a user."""

    id: str
    token: str
    user: User
    created: float
    expires: float


class InsufficientCredits(Exception):
    """The account cannot pay for the job."""


@dataclass
class Job:
    """One stored job, with its status as of now."""

    id: str
    prompt: str
    model_id: str
    feature_id: str
    mode: str
    aspect_ratio: str
    created: float
    duration: float
    image_count: int
    status: str
    error: str | None
    progress: float


class Store:
    """Thread-safe access to the emulator database (one connection behind a lock)."""

    def __init__(self, path: Path, initial_credits: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self.initial_credits = initial_credits

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add_token(self, token: str) -> None:
        """Make `token` known, with the initial credits unless it already has an account."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO accounts VALUES (?, ?)",
                (token_hash(token), self.initial_credits),
            )

    def add_user(self, email: str, password: str) -> User:
        """Create (or update the password of) a user; its credits start as a token's do."""
        email = email.strip().lower()
        with self._lock:
            self._db.execute(
                "INSERT INTO users VALUES (?, ?, ?, ?, ?) ON CONFLICT(email)"
                " DO UPDATE SET password_hash = excluded.password_hash",
                (
                    email,
                    str(uuid.uuid4()),
                    email.split("@")[0].capitalize(),
                    password_hash(email, password),
                    time.time(),
                ),
            )
        user = self.user(email)
        assert user is not None
        self.add_token(user.owner)
        return user

    def user(self, email: str, password: str | None = None) -> User | None:
        """The user, when it exists (and, given a password, when that is right)."""
        with self._lock:
            row = self._db.execute(
                "SELECT email, id, name, created, password_hash FROM users WHERE email = ?",
                (email.strip().lower(),),
            ).fetchone()
        if row is None or (password is not None and row[4] != password_hash(row[0], password)):
            return None
        return User(*row[:4])

    def create_session(self, user: User, seconds: float, token: str) -> Session:
        now = time.time()
        session = Session(str(uuid.uuid4()), token, user, now, now + seconds)
        with self._lock:
            self._db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?)",
                (token_hash(token), session.id, user.email, now, session.expires),
            )
        return session

    def session(self, token: str) -> Session | None:
        """The session of `token`, expired or not (the caller decides)."""
        with self._lock:
            row = self._db.execute(
                "SELECT id, user_email, created, expires FROM sessions WHERE token_hash = ?",
                (token_hash(token),),
            ).fetchone()
        if row is None:
            return None
        user = self.user(row[1])
        return None if user is None else Session(row[0], token, user, row[2], row[3])

    def end_session(self, token: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash(token),))

    def expire_sessions(self) -> None:
        """Make every session expired now (for tests and rehearsals)."""
        with self._lock:
            self._db.execute("UPDATE sessions SET expires = ?", (time.time() - 1,))

    def is_known(self, token: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM accounts WHERE token_hash = ?", (token_hash(token),)
            ).fetchone()
        return row is not None

    def credits(self, token: str) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT credits FROM accounts WHERE token_hash = ?", (token_hash(token),)
            ).fetchone()
        return row[0] if row else 0

    def create_job(
        self,
        token: str,
        fields: dict[str, str],
        *,
        cost: int,
        duration: float,
        will_fail: bool,
        image_count: int,
        idempotency_key: str | None,
        job_id: str | None = None,
    ) -> tuple[str, bool]:
        """Charge and store a job; (job id, created). A known key returns its job again."""
        owner = token_hash(token)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if idempotency_key:
                    row = self._db.execute(
                        "SELECT job_id FROM idempotency WHERE token_hash = ? AND key = ?",
                        (owner, idempotency_key),
                    ).fetchone()
                    if row:
                        self._db.execute("COMMIT")
                        return row[0], False
                (credits,) = self._db.execute(
                    "SELECT credits FROM accounts WHERE token_hash = ?", (owner,)
                ).fetchone()
                if credits < cost:
                    raise InsufficientCredits(credits)
                job_id = job_id or "task_" + uuid.uuid4().hex[:20]
                self._db.execute(
                    "UPDATE accounts SET credits = credits - ? WHERE token_hash = ?", (cost, owner)
                )
                self._db.execute(
                    "INSERT INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,NULL)",
                    (
                        job_id,
                        owner,
                        fields["prompt"],
                        fields["modelId"],
                        fields["featureId"],
                        fields["mode"],
                        fields["aspectRatio"],
                        time.time(),
                        duration,
                        int(will_fail),
                        cost,
                        image_count,
                        "pending",
                    ),
                )
                if idempotency_key:
                    self._db.execute(
                        "INSERT INTO idempotency VALUES (?, ?, ?)", (owner, idempotency_key, job_id)
                    )
                self._db.execute("COMMIT")
                return job_id, True
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def job(self, token: str | None, job_id: str) -> Job | None:
        """The job if it exists and belongs to `token` (None: to anyone), advanced to now."""
        self.finish_due_jobs()
        owner = "" if token is None else " AND token_hash = ?"
        with self._lock:
            row = self._db.execute(
                "SELECT id, prompt, model_id, feature_id, mode, aspect_ratio, created, duration,"
                " image_count, status, error FROM jobs WHERE id = ?" + owner,
                (job_id,) if token is None else (job_id, token_hash(token)),
            ).fetchone()
        if row is None:
            return None
        job = Job(*row, progress=0)
        elapsed = time.time() - job.created
        if job.status == "pending" and elapsed >= job.duration * 0.25:
            job.status = "processing"
        if job.status in ACTIVE:  # the share of its time gone, as a hint of its end
            job.progress = round(min(99.9, 100 * elapsed / max(job.duration, 0.001)), 1)
        elif job.status == "success":
            job.progress = 100
        return job

    @staticmethod
    def seconds_left(job: Job) -> float:
        """How long an active job still runs."""
        return max(0.0, job.created + job.duration - time.time())

    def finish_due_jobs(self) -> int:
        """Move every job past its duration to success or failed (refunding failures)."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                due = self._db.execute(
                    "SELECT id, token_hash, will_fail, cost FROM jobs"
                    " WHERE status IN ('pending', 'processing') AND created + duration <= ?",
                    (now,),
                ).fetchall()
                for job_id, owner, will_fail, cost in due:
                    if will_fail:
                        self._db.execute(
                            "UPDATE jobs SET status = 'failed', error = ? WHERE id = ?",
                            (
                                "The provider failed to generate the image (injected failure)",
                                job_id,
                            ),
                        )
                        self._db.execute(
                            "UPDATE accounts SET credits = credits + ? WHERE token_hash = ?",
                            (cost, owner),
                        )
                    else:
                        self._db.execute(
                            "UPDATE jobs SET status = 'success' WHERE id = ?", (job_id,)
                        )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return len(due)

    def created_times(self, token: str) -> list[float]:
        """When each of the token's jobs was created (for tests of concurrency)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT created FROM jobs WHERE token_hash = ? ORDER BY created",
                (token_hash(token),),
            ).fetchall()
        return [row[0] for row in rows]

    def count_jobs(self, token: str | None = None) -> int:
        with self._lock:
            if token is None:
                return self._db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
            return self._db.execute(
                "SELECT COUNT(*) FROM jobs WHERE token_hash = ?", (token_hash(token),)
            ).fetchone()[0]
