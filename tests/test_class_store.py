"""The live class's shared state (app/class_store.py): one contract, run on the in-memory store and
on the Redis store against a real redis-server (tests/app_support.py starts it on a free port), then
what only one of them has: expiry by the memory store's clock, the keys' TTL in Redis, and a Redis
that goes down and comes back."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from app.class_store import (
    CLASS_STORE_ENV,
    CLASS_TTL_S,
    FRESH_S,
    WRONG_KEY_WINDOW_S,
    ClassState,
    ClassStore,
    ClassStoreDown,
    MemoryClassStore,
    RedisClassStore,
    Reveal,
    Round,
    open_store,
    refusal_delay,
)
from bench.class_load import free_port
from tests.app_support import redis_server

T = 1_760_000_000.25  # a time of day as time.time() gives it: Redis must keep all its digits
PREFIX = "gpt2viz:class:"


class Clock:
    """The memory store's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = T

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def redis_port() -> Iterator[int]:
    port = free_port()
    with redis_server(port):
        yield port


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> ClassStore:
    """Each store, empty: the Redis one on the module's server, its database emptied first."""
    if request.param == "memory":
        return MemoryClassStore()
    port = request.getfixturevalue("redis_port")
    redis.Redis(port=port).flushdb()
    return open_store(f"redis://127.0.0.1:{port}/0")


def a_round(id: str = "r1", step: int = 2) -> Round:
    return Round(id=id, step=step, text="The cat sat on the",
                 top=[(2603, " mat", 0.5), (4171, " floor", 0.25)], opened_at=T + 1.5)


def a_reveal(**by_session: tuple[float, int]) -> Reveal:
    return Reveal(token_id=2603, text=" mat", prob=0.5,
                  probabilities={s: p for s, (p, _) in by_session.items()},
                  ranks={s: rank for s, (_, rank) in by_session.items()})


# --- the contract, on both stores ---

def test_an_empty_store(store: ClassStore) -> None:
    assert store.state() == ClassState(0, None, None, None, None, None)
    assert store.pulse() == (0, None)
    assert store.follower_count(T) == 0 and store.guesses("r1") == {}


def test_the_version_grows_only_when_the_view_changes(store: ClassStore) -> None:
    assert store.publish_view("attention", {"layer": "3", "head": "1"}, T) == 1
    # the same view again, its keys in another order, later: nothing changed
    assert store.publish_view("attention", {"head": "1", "layer": "3"}, T + 10) == 1
    assert store.state().published_at == T  # when it last changed
    assert store.publish_view("attention", {"layer": "4", "head": "1"}, T + 20) == 2
    assert store.publish_view("qkv", {"layer": "4", "head": "1"}, T + 30) == 3
    assert store.publish_view("", {}, T + 40) == 4  # the home page
    assert store.publish_view("", {}, T + 50) == 4
    assert store.state().published_at == T + 40
    store.teacher_seen(T + 60)  # a heartbeat is no change of view
    assert store.pulse() == (4, T + 60)
    assert store.open_round(a_round()) == 5
    assert store.reveal("r1", a_reveal()) and store.pulse()[0] == 6
    assert store.end_round() == 7
    assert store.publish_view("", {}, T + 70) == 7


def test_the_state_comes_back_as_it_was_stored(store: ClassStore) -> None:
    view = {"prompt": "Caf\u00e9 \U0001f642\nline two", "layer": "11", "empty": ""}
    store.publish_view("why", view, T)
    store.teacher_seen(T + 0.125)
    round = Round(id="a" * 32, step=0, text="\u00e9t\u00e9 \"quoted\" <b>",
                  top=[(0, "!", 1e-9), (50256, "<|endoftext|>", 0.3333333333333333)], opened_at=T + 2.0)
    version = store.open_round(round)
    assert store.state() == ClassState(version, "why", view, T, T + 0.125, round)
    assert isinstance(store.state().round.top[0], tuple)
    reveal = a_reveal(alice=(0.1234567890123, 1), bob=(2.5e-7, 41234))
    assert store.reveal(round.id, reveal)
    state = store.state()
    assert state.round == Round(round.id, 0, round.text, round.top, round.opened_at, reveal)
    assert state.version == version + 1
    assert store.pulse() == (state.version, T + 0.125)


def test_publishing_from_two_threads_at_once(store: ClassStore) -> None:
    """Both publish the same views at the same moments (one bump each), then views of their own (one
    bump per call): no bump is lost and none is counted twice."""
    n = 40
    start = threading.Barrier(2, timeout=30)
    same: dict[str, list[int]] = {"a": [], "b": []}
    own: dict[str, list[int]] = {"a": [], "b": []}

    def teacher(name: str) -> None:
        for i in range(n):
            start.wait()  # both at once (bounded: a thread that died fails the other within 30 s)
            same[name].append(store.publish_view("attention", {"layer": str(i)}, T + i))
        start.wait()  # both done with the same views
        for i in range(n):
            own[name].append(store.publish_view(name, {"layer": str(i)}, T + n + i))

    threads = [threading.Thread(target=teacher, args=(name,)) for name in same]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive(), "a publishing thread did not finish within 60 s"
    assert same["a"] == same["b"] == list(range(1, n + 1))
    assert sorted(own["a"] + own["b"]) == list(range(n + 1, 3 * n + 1))
    assert own["a"] == sorted(own["a"]) and own["b"] == sorted(own["b"])
    assert store.pulse()[0] == 3 * n


def test_a_session_guess_is_replaced_and_refused_once_revealed(store: ClassStore) -> None:
    assert not store.guess("r1", "alice", " mat")  # no round yet
    store.open_round(a_round("r1"))
    assert store.guess("r1", "alice", " mat") and store.guess("r1", "bob", " floor")
    assert store.guess("r1", "alice", " rug")  # replaces alice's
    assert store.guesses("r1") == {"alice": " rug", "bob": " floor"}
    assert store.guesses("r0") == {}
    assert not store.guess("r0", "carol", " mat")  # not the current round
    assert store.reveal("r1", a_reveal(alice=(0.01, 7), bob=(0.25, 2)))
    assert not store.guess("r1", "alice", " mat") and not store.guess("r1", "carol", " mat")
    assert store.guesses("r1") == {"alice": " rug", "bob": " floor"}  # kept for the reveal's view


def test_a_new_round_drops_the_old_rounds_guesses(store: ClassStore) -> None:
    first = store.open_round(a_round("r1"))
    store.guess("r1", "alice", " mat")
    assert store.open_round(a_round("r2", step=3)) == first + 1
    assert store.guesses("r2") == {} and store.guesses("r1") == {}
    assert not store.guess("r1", "alice", " mat")  # the old round is gone
    assert store.guess("r2", "alice", " dog")
    assert store.guesses("r2") == {"alice": " dog"}
    assert store.state().round == a_round("r2", step=3)  # not revealed: the new round is open
    store.end_round()
    assert store.state().round is None and store.guesses("r2") == {}
    assert not store.guess("r2", "alice", " cat")


def test_a_reveal_is_refused_for_any_round_but_the_open_one(store: ClassStore) -> None:
    assert not store.reveal("r1", a_reveal())  # no round at all
    version = store.open_round(a_round("r1"))
    assert not store.reveal("r0", a_reveal())
    assert store.pulse()[0] == version and store.state().round.reveal is None
    assert store.reveal("r1", a_reveal())
    assert not store.reveal("r1", a_reveal(alice=(0.5, 1)))  # revealed once
    assert store.state().round.reveal == a_reveal()
    assert store.pulse()[0] == version + 1


def test_the_follower_count_sums_fresh_reports_only(store: ClassStore) -> None:
    store.report_followers("p1", 3, T)
    store.report_followers("p2", 4, T + 2)
    assert store.follower_count(T + 2) == 7
    assert store.follower_count(T + FRESH_S) == 7  # p1's report is exactly FRESH_S old: still fresh
    store.report_followers("p2", 1, T + 3)  # replaces p2's report
    assert store.follower_count(T + 5.5) == 1  # p1's is stale
    store.report_followers("p1", 2, T + 6)
    assert store.follower_count(T + 6) == 3
    assert store.follower_count(T + 20) == 0
    store.report_followers("p3", 0, T + 20)
    assert store.follower_count(T + 20) == 0


def test_wrong_keys_count_within_the_window(store: ClassStore) -> None:
    assert [store.wrong_key(T + at) for at in (0, 100, 200)] == [1, 2, 3]
    assert store.wrong_key(T + WRONG_KEY_WINDOW_S) == 4  # the first is exactly the window's age: counted
    assert store.wrong_key(T + 650) == 4  # the first is 650 s old: out
    assert store.wrong_key(T + 2000) == 1


def test_refusal_delay_doubles_up_to_eight_seconds() -> None:
    assert [refusal_delay(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert refusal_delay(10_000) == 8.0 and refusal_delay(0) == 0.0


# --- what each store has of its own ---

def test_the_memory_store_forgets_everything_a_ttl_after_the_last_write() -> None:
    clock = Clock()
    store = MemoryClassStore(clock=clock)
    store.publish_view("attention", {"layer": "1"}, T)
    store.open_round(a_round("r1"))
    store.guess("r1", "alice", " mat")
    store.wrong_key(T)
    clock.now = T + CLASS_TTL_S - 1
    store.report_followers("p1", 2, clock.now)  # a write: everything lives CLASS_TTL_S more
    clock.now = T + 2 * CLASS_TTL_S - 2
    assert store.state().page == "attention" and store.guesses("r1") == {"alice": " mat"}
    assert store.follower_count(T + CLASS_TTL_S - 1) == 2
    clock.now = T + 2 * CLASS_TTL_S - 1
    assert store.state() == ClassState(0, None, None, None, None, None)
    assert store.guesses("r1") == {} and store.follower_count(T + CLASS_TTL_S - 1) == 0
    assert not store.guess("r1", "bob", " mat")
    assert store.wrong_key(T + 1) == 1
    assert store.publish_view("attention", {"layer": "1"}, clock.now) == 1  # stored anew


def redis_ttls(port: int) -> dict[str, int]:
    client = redis.Redis(port=port, decode_responses=True)
    return {key: client.ttl(key) for key in client.keys("*")}


def test_every_redis_key_expires_a_ttl_after_the_last_write(redis_port: int) -> None:
    redis.Redis(port=redis_port).flushdb()
    store = open_store(f"redis://127.0.0.1:{redis_port}/0")
    store.publish_view("attention", {"layer": "1"}, T)
    store.teacher_seen(T)
    store.report_followers("p1", 2, T)
    store.open_round(a_round("r1"))
    store.guess("r1", "alice", " mat")
    store.reveal("r1", a_reveal(alice=(0.5, 1)))
    store.wrong_key(T)
    ttls = redis_ttls(redis_port)
    names = ("version", "view", "published_at", "teacher_seen", "round", "reveal", "guesses", "followers",
             "wrong_keys")
    assert set(ttls) == {PREFIX + name for name in names}
    assert all(CLASS_TTL_S - 60 < ttl <= CLASS_TTL_S for ttl in ttls.values()), ttls
    client = redis.Redis(port=redis_port)
    for key in ttls:
        client.expire(key, 100)
    store.teacher_seen(T + 1)  # any write keeps every key CLASS_TTL_S more
    assert all(CLASS_TTL_S - 60 < ttl <= CLASS_TTL_S for ttl in redis_ttls(redis_port).values())


ALL_CALLS: dict[str, Callable[[ClassStore], object]] = {
    "state": lambda s: s.state(), "pulse": lambda s: s.pulse(),
    "publish_view": lambda s: s.publish_view("", {}, T), "teacher_seen": lambda s: s.teacher_seen(T),
    "report_followers": lambda s: s.report_followers("p1", 1, T),
    "follower_count": lambda s: s.follower_count(T),
    "open_round": lambda s: s.open_round(a_round()), "guess": lambda s: s.guess("r1", "alice", " mat"),
    "guesses": lambda s: s.guesses("r1"), "reveal": lambda s: s.reveal("r1", a_reveal()),
    "end_round": lambda s: s.end_round(), "wrong_key": lambda s: s.wrong_key(T),
}


def assert_down(store: ClassStore, address: str, call: Callable[[ClassStore], object]) -> None:
    started = time.monotonic()
    with pytest.raises(ClassStoreDown) as down:
        call(store)
    assert time.monotonic() - started < 2.0, "a dead Redis held the call for 2 s or more"
    message = str(down.value)
    assert address in message and "resumes" in message and "secret" not in message, message


@pytest.mark.parametrize("name", ALL_CALLS)
def test_every_call_to_a_redis_that_is_not_there_raises_class_store_down(name: str) -> None:
    port = free_port()  # nothing listens there; opening the store does not notice (it connects later)
    store = open_store(f"redis://:secret@127.0.0.1:{port}/0")
    assert_down(store, f"127.0.0.1:{port}", ALL_CALLS[name])


def test_a_redis_that_never_answers_costs_half_a_second_not_a_hang() -> None:
    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        assert_down(open_store(f"redis://127.0.0.1:{port}/0"), f"127.0.0.1:{port}", ALL_CALLS["state"])


def test_redis_going_down_and_coming_back() -> None:
    port = free_port()
    store = open_store(f"redis://127.0.0.1:{port}/0")
    with redis_server(port):
        store.publish_view("attention", {"layer": "1"}, T)
        store.open_round(a_round("r1"))  # its script is loaded into this server
        assert store.pulse() == (2, None)
    for name in ("pulse", "guess", "publish_view"):
        assert_down(store, f"127.0.0.1:{port}", ALL_CALLS[name])
    with redis_server(port):  # a new server on the same port: nothing survived, the store just works
        assert store.pulse() == (0, None)
        assert not store.guess("r1", "alice", " mat")  # the script is loaded again by itself
        assert store.open_round(a_round("r2")) == 1
        assert store.guess("r2", "alice", " mat") and store.guesses("r2") == {"alice": " mat"}


def test_open_store_picks_the_store_and_explains_a_wrong_address() -> None:
    assert isinstance(open_store(None), MemoryClassStore) and isinstance(open_store(""), MemoryClassStore)
    assert isinstance(open_store("redis://127.0.0.1:6390/2"), RedisClassStore)
    for url in ("http://127.0.0.1:6379/0", "127.0.0.1:6379", "rediss://:secret@host:6379/0"):
        with pytest.raises(ValueError, match=rf"{CLASS_STORE_ENV} .*redis://host:port/db") as wrong:
            open_store(url)
        assert "secret" not in str(wrong.value)
    for url in ("redis://:secret@host:port/0", "redis://:secret@host:6379/zero"):
        with pytest.raises(ValueError, match="redis://host:port/db") as wrong:
            open_store(url)
        assert "secret" not in str(wrong.value)
