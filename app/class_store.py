"""A live class's shared state: the teacher's published view, the teacher's heartbeat, how many
browsers follow, the current "what comes next?" round with its guesses and its reveal, and the
wrong teacher-key tries.

One process keeps it in memory (`MemoryClassStore`); replicas behind HAProxy share it through
Redis (`RedisClassStore`, `GPT2VIZ_CLASS_STORE=redis://host:port/db`, which deploy/class.sh sets).
Both answer the same `ClassStore` contract (tests/test_class_store.py runs it on each).

Everything expires together, `CLASS_TTL_S` after the last write of any kind (a heartbeat and a
follower report are writes): nothing outlives a class by long, and no part of it (the version, say)
expires on its own while the rest stays. After it, the version starts again from 0.

In Redis every key starts with `gpt2viz:class:` and its values are JSON (the wrong tries: a sorted
set of times); each write is one Lua script, so that a compare-and-bump (`publish_view`) or a guess
racing a reveal is atomic across replicas.
A Redis that does not answer raises `ClassStoreDown` within about a second (0.5 s socket
timeouts, no retry); redis-py reconnects at the next command, so once it answers again the next
call works. Redis keeps nothing on disk: a class's state lives only as long as its server.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import redis
import redis.exceptions
from redis.backoff import NoBackoff
from redis.retry import Retry

CLASS_STORE_ENV = "GPT2VIZ_CLASS_STORE"  # unset/empty: in-memory store (one process); "redis://host:port/db"
FRESH_S = 5.0  # a follower count report or teacher heartbeat older than this is stale
CLASS_TTL_S = 4 * 3600  # everything the store holds expires after this long without being written
WRONG_KEY_WINDOW_S = 600.0
_REDIS_TIMEOUT_S = 0.5  # socket and connect timeouts: a page never hangs on a dead Redis


class ClassStoreDown(RuntimeError):
    """The shared store does not answer. str() is one sentence for the user, naming the store's address
    (host:port, never a password) and saying live features pause and resume once it answers."""

    def __init__(self, address: str) -> None:
        super().__init__(f"The class store (Redis at {address}) does not answer: the live class pauses "
                         "and resumes by itself once it answers again.")
        self.address = address


@dataclass(frozen=True)
class Reveal:
    token_id: int  # the token the model drew
    text: str
    prob: float
    probabilities: dict[str, float]  # session id -> the probability of that session's guess (its first token)
    ranks: dict[str, int]  # session id -> that guess's rank among the vocabulary (1 = likeliest)


@dataclass(frozen=True)
class Round:
    id: str  # unique (e.g. uuid4 hex)
    step: int  # index of the generation step asked about (0 = first generated token)
    text: str  # the text so far that followers see
    top: list[tuple[int, str, float]]  # the model's candidates (token id, text, probability), highest first
    opened_at: float
    reveal: Reveal | None = None


@dataclass(frozen=True)
class ClassState:
    version: int  # grows by 1 whenever the published view changes, a round opens, is revealed or ends
    page: str | None  # the teacher's page url path ("" is the home page); None before any publish
    view: dict[str, str] | None  # the teacher's share-link query parameters
    published_at: float | None  # when the stored view last changed
    teacher_seen_at: float | None
    round: Round | None


class ClassStore(Protocol):
    """What the app asks of a class's shared state (`MemoryClassStore`, `RedisClassStore`). Times are
    the caller's `now` (time.time()); every method of the Redis store may raise `ClassStoreDown`."""

    def state(self) -> ClassState:
        """Everything at once (Redis: one round trip)."""

    def pulse(self) -> tuple[int, float | None]:
        """(version, teacher_seen_at): what a per-process watcher polls 10 times a second; cheap."""

    def publish_view(self, page: str, view: dict[str, str], now: float) -> int:
        """Stores the teacher's (page, view); the version grows, and published_at becomes `now`, only
        when they differ from what is stored. Returns the version after the call."""

    def teacher_seen(self, now: float) -> None:
        """The teacher's heartbeat."""

    def report_followers(self, process_id: str, count: int, now: float) -> None:
        """How many browsers follow the teacher in process `process_id` (replaces its last report)."""

    def follower_count(self, now: float) -> int:
        """The sum of the reports not older than FRESH_S at `now` (stale ones are dropped)."""

    def open_round(self, round: Round) -> int:
        """Makes `round` the current one, replacing any earlier round and its guesses; returns the version."""

    def guess(self, round_id: str, session_id: str, text: str) -> bool:
        """Records (or replaces) a session's guess; False, storing nothing, when `round_id` is not the
        current round or it is revealed. Text is stored as given (the caller validates its length)."""

    def guesses(self, round_id: str) -> dict[str, str]:
        """Session id -> guess text of the current round; {} for any other round."""

    def reveal(self, round_id: str, reveal: Reveal) -> bool:
        """Reveals the current open round; False when `round_id` is not it (or already revealed)."""

    def end_round(self) -> int:
        """No current round any more; returns the version."""

    def wrong_key(self, now: float) -> int:
        """Records one wrong teacher-key try; returns how many were recorded within WRONG_KEY_WINDOW_S
        up to `now`, this one included."""


def refusal_delay(recent_wrong_tries: int) -> float:
    """Seconds to wait before answering a wrong key: 0.5 s for the first, doubling each time, at most 8 s
    (0 when there was none)."""
    if recent_wrong_tries < 1:
        return 0.0
    return 0.5 * 2.0 ** min(recent_wrong_tries - 1, 4)


def open_store(url: str | None) -> ClassStore:
    """The store `url` names (GPT2VIZ_CLASS_STORE's value): None or "" keeps the class in this process's
    memory, "redis://host:port/db" in that Redis. Contacts nothing: the app may start while Redis is down."""
    if not url:
        return MemoryClassStore()
    if url.startswith("redis://"):
        return RedisClassStore(url)
    raise ValueError(f"{CLASS_STORE_ENV} is not a redis:// address: set it to one, as redis://host:port/db "
                     f"(e.g. redis://127.0.0.1:6379/0), or leave it unset for a class on one process.")


# --- JSON forms, shared by both stores (the memory store keeps the same values, so a list given to
# it and changed afterwards changes nothing stored) ---

def _round_json(round: Round) -> str:
    return json.dumps({"id": round.id, "step": round.step, "text": round.text,
                       "top": [list(candidate) for candidate in round.top], "opened_at": round.opened_at})


def _round_from(raw: str | bytes, reveal: str | bytes | None) -> Round:
    data = json.loads(raw)
    return Round(id=data["id"], step=data["step"], text=data["text"],
                 top=[(int(token), str(text), float(p)) for token, text, p in data["top"]],
                 opened_at=data["opened_at"], reveal=None if reveal is None else _reveal_from(reveal))


def _reveal_json(reveal: Reveal) -> str:
    return json.dumps({"token_id": reveal.token_id, "text": reveal.text, "prob": reveal.prob,
                       "probabilities": reveal.probabilities, "ranks": reveal.ranks})


def _reveal_from(raw: str | bytes) -> Reveal:
    data = json.loads(raw)
    return Reveal(token_id=data["token_id"], text=data["text"], prob=data["prob"],
                  probabilities=data["probabilities"], ranks=data["ranks"])


def _view_json(page: str, view: dict[str, str]) -> str:
    """One spelling per (page, view), whatever the order of the view's keys: compared as a string."""
    return json.dumps([page, view], sort_keys=True)


class MemoryClassStore:
    """The class in this process's memory (a class on one replica). Thread-safe: one lock."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        """`clock` only times the expiry of the content, CLASS_TTL_S after the last write."""
        self._clock = clock
        self._lock = threading.Lock()
        self._clear()

    def _clear(self) -> None:
        self._written_at: float | None = None
        self._version = 0
        self._view: str | None = None  # _view_json of the published view
        self._published_at: float | None = None
        self._teacher_seen_at: float | None = None
        self._round: str | None = None  # _round_json
        self._round_id: str | None = None
        self._reveal: str | None = None  # _reveal_json, while the current round is revealed
        self._guesses: dict[str, str] = {}  # the current round's
        self._followers: dict[str, tuple[int, float]] = {}  # process id -> (count, reported at)
        self._wrong_tries: list[float] = []

    @contextmanager
    def _locked(self, write: bool = False) -> Iterator[None]:
        """The lock, with the content dropped first if it has expired; a write keeps it CLASS_TTL_S more."""
        with self._lock:
            if self._written_at is not None and self._clock() - self._written_at >= CLASS_TTL_S:
                self._clear()
            yield
            if write:
                self._written_at = self._clock()

    def state(self) -> ClassState:
        with self._locked():
            page, view = json.loads(self._view) if self._view is not None else (None, None)
            round = None if self._round is None else _round_from(self._round, self._reveal)
            return ClassState(self._version, page, view, self._published_at, self._teacher_seen_at, round)

    def pulse(self) -> tuple[int, float | None]:
        with self._locked():
            return self._version, self._teacher_seen_at

    def publish_view(self, page: str, view: dict[str, str], now: float) -> int:
        stored = _view_json(page, view)
        with self._locked(write=True):
            if stored != self._view:
                self._view, self._published_at = stored, now
                self._version += 1
            return self._version

    def teacher_seen(self, now: float) -> None:
        with self._locked(write=True):
            self._teacher_seen_at = now

    def report_followers(self, process_id: str, count: int, now: float) -> None:
        with self._locked(write=True):
            self._followers[process_id] = (count, now)

    def follower_count(self, now: float) -> int:
        with self._locked():
            self._followers = {pid: (count, at) for pid, (count, at) in self._followers.items()
                               if now - at <= FRESH_S}
            return sum(count for count, _ in self._followers.values())

    def open_round(self, round: Round) -> int:
        stored = _round_json(round)
        with self._locked(write=True):
            self._round, self._round_id, self._reveal, self._guesses = stored, round.id, None, {}
            self._version += 1
            return self._version

    def guess(self, round_id: str, session_id: str, text: str) -> bool:
        with self._locked(write=True):
            if round_id != self._round_id or self._reveal is not None:
                return False
            self._guesses[session_id] = text
            return True

    def guesses(self, round_id: str) -> dict[str, str]:
        with self._locked():
            return dict(self._guesses) if round_id == self._round_id else {}

    def reveal(self, round_id: str, reveal: Reveal) -> bool:
        stored = _reveal_json(reveal)
        with self._locked(write=True):
            if round_id != self._round_id or self._reveal is not None:
                return False
            self._reveal = stored
            self._version += 1
            return True

    def end_round(self) -> int:
        with self._locked(write=True):
            self._round = self._round_id = self._reveal = None
            self._guesses = {}
            self._version += 1
            return self._version

    def wrong_key(self, now: float) -> int:
        with self._locked(write=True):
            self._wrong_tries = [at for at in self._wrong_tries if now - at <= WRONG_KEY_WINDOW_S] + [now]
            return len(self._wrong_tries)


# --- Redis ---

_PREFIX = "gpt2viz:class:"
# Every script gets every key, in this order, and ARGV[1] = CLASS_TTL_S: a write refreshes them all.
_KEY_NAMES = ("version", "view", "published_at", "teacher_seen", "round", "reveal", "guesses",
              "followers", "wrong_keys")
_KEYS = [_PREFIX + name for name in _KEY_NAMES]
_LUA_PRELUDE = """
local version, view, published_at, teacher_seen, round, reveal, guesses, followers, wrong_keys =
    unpack(KEYS)
local function refresh()
    for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, ARGV[1]) end
end
local function bump()
    local v = redis.call('INCR', version)
    refresh()
    return v
end
local function is_current(round_id)  -- the current round is round_id and not revealed yet
    local raw = redis.call('GET', round)
    return raw and cjson.decode(raw)['id'] == round_id and redis.call('EXISTS', reveal) == 0
end
"""
_LUA = {
    # ARGV: ttl, view json, now json
    "publish_view": """
if redis.call('GET', view) == ARGV[2] then
    refresh()
    return tonumber(redis.call('GET', version) or '0')
end
redis.call('SET', view, ARGV[2])
redis.call('SET', published_at, ARGV[3])
return bump()
""",
    # ARGV: ttl, now json
    "teacher_seen": "redis.call('SET', teacher_seen, ARGV[2]) refresh()",
    # ARGV: ttl, process id, [count, now] json
    "report_followers": "redis.call('HSET', followers, ARGV[2], ARGV[3]) refresh()",
    # ARGV: ttl, now, FRESH_S: sums the fresh reports, drops the stale ones
    "follower_count": """
local entries, total, stale = redis.call('HGETALL', followers), 0, {}
for i = 1, #entries, 2 do
    local report = cjson.decode(entries[i + 1])
    if tonumber(ARGV[2]) - report[2] <= tonumber(ARGV[3]) then
        total = total + report[1]
    else
        stale[#stale + 1] = entries[i]
    end
end
if #stale > 0 then redis.call('HDEL', followers, unpack(stale)) end
return total
""",
    # ARGV: ttl, round json
    "open_round": "redis.call('SET', round, ARGV[2]) redis.call('DEL', reveal, guesses) return bump()",
    # ARGV: ttl, round id, session id, text json
    "guess": """
if not is_current(ARGV[2]) then return 0 end
redis.call('HSET', guesses, ARGV[3], ARGV[4])
refresh()
return 1
""",
    # ARGV: ttl, round id, reveal json
    "reveal": """
if not is_current(ARGV[2]) then return 0 end
redis.call('SET', reveal, ARGV[3])
bump()
return 1
""",
    # ARGV: ttl
    "end_round": "redis.call('DEL', round, reveal, guesses) return bump()",
    # ARGV: ttl, now, oldest time still in the window (exclusive bound: '(' + time), a unique member
    "wrong_key": """
redis.call('ZADD', wrong_keys, ARGV[2], ARGV[4])
redis.call('ZREMRANGEBYSCORE', wrong_keys, '-inf', ARGV[3])
refresh()
return redis.call('ZCARD', wrong_keys)
""",
}


class RedisClassStore:
    """The class in a Redis that every replica reaches (`redis://host:port/db`)."""

    def __init__(self, url: str) -> None:
        """Parses `url` and prepares the client; connects only at the first call. The errors never
        repeat the address, which may hold a password."""
        try:
            if not re.fullmatch(r"/?|/\d+", urllib.parse.urlsplit(url).path):  # redis-py would ignore it
                raise ValueError("the path after host:port must be a database number, as /0")
            self._redis = redis.Redis.from_url(
                url, socket_timeout=_REDIS_TIMEOUT_S, socket_connect_timeout=_REDIS_TIMEOUT_S,
                # no retry (redis-py's from_url default, kept whatever it becomes): a dead Redis answers
                # at once, and a script whose answer timed out (a wrong key's try) never runs twice
                retry=Retry(NoBackoff(), 0))
        except ValueError as e:
            raise ValueError(f"{CLASS_STORE_ENV} is not a Redis address that can be read ({e}): "
                             f"write it as redis://host:port/db, e.g. redis://127.0.0.1:6379/0.") from None
        kwargs = self._redis.connection_pool.connection_kwargs
        self.address = f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
        self._scripts = {name: self._redis.register_script(_LUA_PRELUDE + lua) for name, lua in _LUA.items()}

    @contextmanager
    def _answering(self) -> Iterator[None]:
        try:
            yield
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as e:
            raise ClassStoreDown(self.address) from e

    def _run(self, script: str, *args: Any) -> Any:
        with self._answering():
            return self._scripts[script](keys=_KEYS, args=[CLASS_TTL_S, *args])

    def _get(self, *names: str) -> list[bytes | None]:
        with self._answering():
            return self._redis.mget([_PREFIX + name for name in names])

    def state(self) -> ClassState:
        version, view, published_at, seen, round, reveal = self._get(
            "version", "view", "published_at", "teacher_seen", "round", "reveal")
        page, view = json.loads(view) if view is not None else (None, None)
        return ClassState(version=int(version or 0), page=page, view=view,
                          published_at=None if published_at is None else json.loads(published_at),
                          teacher_seen_at=None if seen is None else json.loads(seen),
                          round=None if round is None else _round_from(round, reveal))

    def pulse(self) -> tuple[int, float | None]:
        version, seen = self._get("version", "teacher_seen")
        return int(version or 0), None if seen is None else json.loads(seen)

    def publish_view(self, page: str, view: dict[str, str], now: float) -> int:
        return int(self._run("publish_view", _view_json(page, view), json.dumps(now)))

    def teacher_seen(self, now: float) -> None:
        self._run("teacher_seen", json.dumps(now))

    def report_followers(self, process_id: str, count: int, now: float) -> None:
        self._run("report_followers", process_id, json.dumps([count, now]))

    def follower_count(self, now: float) -> int:
        return int(self._run("follower_count", repr(now), repr(FRESH_S)))

    def open_round(self, round: Round) -> int:
        return int(self._run("open_round", _round_json(round)))

    def guess(self, round_id: str, session_id: str, text: str) -> bool:
        return bool(self._run("guess", round_id, session_id, json.dumps(text)))

    def guesses(self, round_id: str) -> dict[str, str]:
        with self._answering(), self._redis.pipeline(transaction=True) as pipe:
            round, stored = pipe.get(_PREFIX + "round").hgetall(_PREFIX + "guesses").execute()
        if round is None or json.loads(round)["id"] != round_id:
            return {}
        return {session.decode(): json.loads(text) for session, text in stored.items()}

    def reveal(self, round_id: str, reveal: Reveal) -> bool:
        return bool(self._run("reveal", round_id, _reveal_json(reveal)))

    def end_round(self) -> int:
        return int(self._run("end_round"))

    def wrong_key(self, now: float) -> int:
        # the window's bound is computed here: Lua would print it with 14 digits, rounding a time
        return int(self._run("wrong_key", repr(now), f"({now - WRONG_KEY_WINDOW_S!r}", uuid.uuid4().hex))

