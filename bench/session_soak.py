"""A session soak (issue 21): simulated Open WebUI users (tests/sessions.py) on the proxy for ``--duration`` seconds,
on the in-process engine with the default model (SmolLM2) and over HTTP in front of the mistral.rs emulator.

    python bench/session_soak.py [--duration 300] [--legs in-process,http] [--seed 21]
                                 [--output bench/results-session-soak.md]

Each leg serves two proxies on one server, as tests/faults/test_session_soak.py does: the users' requests go to one on
its defaults (over HTTP with MAX_CONCURRENT_REQUESTS=4, so that requests queue in it), those drawn to meet a deadline to
one whose REQUEST_TIMEOUT_SECS is short. The users chat as Open WebUI does, beside its title, tags and follow-up
requests, and give up on some at random points. When the time is up no one starts a request; what is in flight ends
as it would. Reported per leg: the requests by fate and by what their clients saw, what the proxy counted, how long
requests waited for a slot beyond the live work ahead of them (from the spans: the slot's holders, and when each
one's client stopped waiting), and whether everything let go afterwards. Exits 1 when a request is still counted
active, a slot is held or waited for, an engine producer thread is alive, the emulator still streams, a request is
not counted exactly once, or a client met an error no fate allows.
"""

from __future__ import annotations

import argparse
import bisect
import datetime
import os
import random
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's app/ and tests/, before any installed copy
# The engine reads RUST_LOG when mistralrs is imported: warnings only, as `serve` does.
os.environ.setdefault("RUST_LOG", "warn")

import procs  # noqa: E402
import run  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402

from app.main import create_app, make_upstream  # noqa: E402
from app.settings import Settings  # noqa: E402
from app.upstream import Upstream  # noqa: E402
from app.upstream.embedded import EmbeddedUpstream  # noqa: E402
from otel.setup import configure  # noqa: E402
from tests.emulator import Emulator, Reply  # noqa: E402
from tests.otel.helpers import values  # noqa: E402
from tests.servers import serve_in_thread  # noqa: E402
from tests.sessions import FATES, Call, Mix, Pair, Shape, Users, mark, sentence  # noqa: E402

LEGS = ("in-process", "http")
DEADLINE = {"error": "the request exceeded its time limit"}
# What the proxy may answer a client of this soak: an answer, a deadline (in-band or 504), a client gone, a busy 503.
EXPECTED = {
    ("200", "none"),
    ("200", "upstream_timeout"),
    ("504", "upstream_timeout"),
    ("200", "client_disconnected"),
    ("499", "client_disconnected"),
    ("503", "queue_timeout"),
    ("503", "overloaded"),
}
_NS = 1e9
# A client's bound on a wait: past the longest the defaults allow (a request's deadline: 300 s, waits included).
HANG = 900.0


@dataclass(frozen=True)
class Leg:
    """One engine, its proxies and its users."""

    name: str
    mix: Mix
    strict_timeout: float  # the second proxy's REQUEST_TIMEOUT_SECS
    capacity: int  # slots shared by the queued requests: the engine's, or the proxy's over HTTP
    service: str  # the span that lasts as long as a request holds one
    shared: bool  # the deadline proxy's requests hold the same slots (the engine's)
    description: str
    # The GGUF engine reads one prompt at a time (app/upstream/embedded/engine.py): a request waits behind the prompts
    # being read as well as behind full slots, until the holder's span records "prompt read".
    prompt_gate: bool = False


IN_PROCESS = Leg(
    "in-process",
    Mix(
        users=2,
        sessions=None,
        turns=3,
        long_history=8,
        patience=60.0,
        chat_odds=(0.6, 0.15, 0.1, 0.15),
        background_odds=(0.75, 0.15, 0.0, 0.1),
    ),
    strict_timeout=20.0,
    capacity=8,
    service="mistralrs chat",
    shared=True,
    prompt_gate=True,
    description="`Settings()` without MISTRAL_URL: the default model (SmolLM2-135M-Instruct Q4_1 GGUF) in-process, "
    "eight engine slots (the default; one prompt read at a time), every other setting on its default (a wait "
    "for the engine's slot ends at the request's deadline, REQUEST_TIMEOUT_SECS, 300 s, as a 504); the deadline "
    "proxy on the same engine with REQUEST_TIMEOUT_SECS=20. 2 users, a long history being 8 messages; a client "
    "that gives up waits up to 60 s; Open WebUI's bodies as they are (no options on chats, follow-ups and tags; the "
    "title's num_predict 1000): the model ends most answers itself, and writes on to the deadline now and then.",
)
HTTP = Leg(
    "http",
    Mix(
        users=8,
        sessions=None,
        turns=3,
        long_history=40,
        patience=3.0,
        chat_odds=(0.6, 0.15, 0.1, 0.15),
        background_odds=(0.75, 0.15, 0.0, 0.1),
    ),
    strict_timeout=2.0,
    capacity=4,
    service="chat mistral-7b",
    shared=False,
    description="the mistral.rs emulator (tests/emulator/) over HTTP, answering as a model of 50 tokens/s would "
    "(chats 20-200 words, titles 4-10, tags 5-15, follow-ups 30-80; a first byte after 50 ms plus 1 ms per 20 "
    "prompt words); the proxy with MAX_CONCURRENT_REQUESTS=4, else its defaults; the deadline proxy with "
    "REQUEST_TIMEOUT_SECS=2. 8 users; a client that gives up waits up to 3 s.",
)


class Intervals(SpanExporter):
    """Keeps what the analysis needs of each span (a SpanExporter on a SimpleSpanProcessor: nothing is dropped)."""

    def __init__(self) -> None:
        self.servers: dict[str, int] = {}  # trace id -> the SERVER span's start: the request's arrival
        self.services: dict[str, dict[str, tuple[int, int]]] = {}  # span name -> trace id -> (start, end)
        self.read: dict[str, int] = {}  # trace id -> when the engine had read the request's prompt
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            for span in spans:
                trace, start, end = f"{span.context.trace_id:032x}", span.start_time or 0, span.end_time or 0
                if span.kind is SpanKind.SERVER:
                    self.servers.setdefault(trace, start)
                else:
                    self.services.setdefault(span.name, {}).setdefault(trace, (start, end))
                    for event in span.events:
                        if event.name == "prompt read":
                            self.read.setdefault(trace, event.timestamp)
        return SpanExportResult.SUCCESS


@dataclass
class Outcome:
    leg: Leg
    calls: list[Call]
    counted: dict[tuple[str, str], int]
    checks: list[tuple[str, object, bool]]  # what was checked after the run, its value, whether it is right
    seconds: float  # from the first request to the last client's return
    drain: float  # from then until everything let go
    foreign: float  # the share of the machine other processes used meanwhile
    intervals: Intervals
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(good for _, _, good in self.checks)


# --- the legs ---------------------------------------------------------------------------------------------------------


def _emulated(replies: dict[int, Reply]) -> Shape:
    def shape(rng: random.Random, call: Call) -> None:
        ranges = {"chat": (20, 200), "title": (4, 10), "tags": (5, 15), "follow_ups": (30, 80)}
        prompt = sum(len(message["content"].split()) for message in call.body["messages"])
        words = sentence(rng, rng.randint(*ranges[call.kind]))
        replies[call.number] = Reply(content=words, delay=0.02, first_byte_delay=0.05 + prompt / 20000)

    return shape


@dataclass
class Served:
    """A leg's pair of proxies on their server, and what must come back to 0 in its engine afterwards."""

    pair: Pair
    url: str
    model: str
    counters: Callable[[], dict[str, int]]
    shape: Shape | None = None  # how the emulator answers each request


@contextmanager
def _served(leg: Leg, telemetry: Any) -> Iterator[Served]:
    with ExitStack() as stack:
        engine: Upstream | None = None
        if leg is IN_PROCESS:
            main = Settings()
            local = make_upstream(main, telemetry)
            assert isinstance(local, EmbeddedUpstream)
            if local.slots.limit != leg.capacity:
                raise SystemExit(f"the engine has {local.slots.limit} slots, not {leg.capacity}: update IN_PROCESS")
            engine, strict, model, shape = local, Settings(request_timeout=leg.strict_timeout), local.spec.name, None

            def counters() -> dict[str, int]:
                producers = sum(thread.name == "mistralrs-stream" for thread in threading.enumerate())
                return {
                    "engine slots held": local.slots.held,
                    "engine slots waited for": local.slots.waiting,
                    "engine streams": local.active_streams,
                    "producer threads": producers,
                }
        else:
            emulator, replies = Emulator(), dict[int, Reply]()
            emulator.reply_for = lambda body: replies.get(mark(body) or 0)
            upstream = stack.enter_context(serve_in_thread(emulator.app))  # type: ignore[arg-type]
            main = Settings(mistral_url=upstream.url, max_concurrent=leg.capacity)
            strict, model = Settings(mistral_url=upstream.url, request_timeout=leg.strict_timeout), "mistral-7b"
            shape = _emulated(replies)

            def counters() -> dict[str, int]:
                return {"emulator streams": emulator.active_streams}

        pair = Pair(*(create_app(each, telemetry=telemetry, upstream=engine) for each in (main, strict)))
        server = stack.enter_context(serve_in_thread(pair))  # type: ignore[arg-type]
        yield Served(pair, server.url, model, counters, shape)


def run_leg(leg: Leg, options: argparse.Namespace) -> Outcome:
    reader, intervals = InMemoryMetricReader(), Intervals()
    telemetry = configure("bench", environ={}, metric_readers=[reader])
    provider = telemetry.tracer_provider
    assert isinstance(provider, TracerProvider)
    provider.add_span_processor(SimpleSpanProcessor(intervals))
    try:
        with _served(leg, telemetry) as served:
            ours, machine = procs.tree_cpu_seconds(os.getpid()), _machine_busy()
            started = time.monotonic()
            until = started + options.duration
            users = Users(
                served.url, served.model, leg.mix, seed=options.seed, shape=served.shape, until=until, hang=HANG
            )
            print(f"[{leg.name}] {leg.mix.users} users for {options.duration:g} s", flush=True)
            calls = _with_progress(leg, users)
            seconds = time.monotonic() - started
            foreign = (_machine_busy() - machine) - (procs.tree_cpu_seconds(os.getpid()) - ours)
            drained = _drain(served, reader, options.drain)
            drain = time.monotonic() - started - seconds
            checks = _checks(served, reader, calls)
            counted = {(s, e): n for (_, s, e), n in _counts(reader).items()}
    finally:
        telemetry.shutdown()
    share = max(foreign, 0.0) / (seconds * (os.cpu_count() or 1))
    outcome = Outcome(leg, calls, counted, checks, seconds, drain, share, intervals)
    if not drained:
        outcome.notes.append(f"**did not let go within {options.drain:g} s of the last client's return**")
    return outcome


def _with_progress(leg: Leg, users: Users) -> list[Call]:
    done = threading.Event()

    def report() -> None:
        while not done.wait(30):
            seen = Counter(call.status for call in users.calls if call.ended)
            print(f"[{leg.name}] {len(users.calls)} requests, ended by status: {dict(seen)}", flush=True)

    reporter = threading.Thread(target=report, daemon=True)
    reporter.start()
    try:
        return users.run()
    finally:
        done.set()


def _machine_busy() -> float:
    return sum(busy for busy, _steal in procs.core_seconds().values())


def _counts(reader: InMemoryMetricReader) -> dict[tuple[Any, ...], Any]:
    return values(reader, "mistral_http_requests", "endpoint", "status", "error_type")


def _active(reader: InMemoryMetricReader) -> int:
    return sum(values(reader, "mistral_active_requests").values())


def _drain(served: Served, reader: InMemoryMetricReader, limit: float) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        limiters = all(each.held == each.waiting == 0 for each in served.pair.limiters)
        if limiters and not any(served.counters().values()) and _active(reader) == 0:
            return True
        time.sleep(0.05)
    return False


def _checks(served: Served, reader: InMemoryMetricReader, calls: list[Call]) -> list[tuple[str, object, bool]]:
    checks: list[tuple[str, object, bool]] = [("mistral_active_requests", _active(reader), _active(reader) == 0)]
    for name, limiter in zip(("proxy", "deadline proxy"), served.pair.limiters, strict=True):
        checks.append(
            (
                f"{name}: slots held / waited for",
                f"{limiter.held} / {limiter.waiting}",
                limiter.held == limiter.waiting == 0,
            )
        )
    checks += [(name, value, value == 0) for name, value in served.counters().items()]
    counted = sum(_counts(reader).values())
    checks.append(("requests counted / sent", f"{counted} / {len(calls)}", counted == len(calls)))
    unexpected = {key for key in _counts(reader) if key[1:] not in EXPECTED}
    checks.append(("outcomes counted outside the expected set", sorted(unexpected) or "none", not unexpected))
    errors = [f"#{call.number}: {call.error}" for call in calls if call.error]
    checks.append(("client errors", "; ".join(errors[:3]) or "none", not errors))
    return checks


# --- what the clients saw ---------------------------------------------------------------------------------------------


def seen(call: Call) -> str:
    """What a client saw, in a word or three."""
    if call.error:
        return "client error"
    if call.status is None:
        return "gave up before any byte"
    last = call.replies[-1] if call.replies else {}
    if call.status == 200 and last.get("done") is True:
        return "answered"
    if last == DEADLINE:
        return "deadline (in-band line)" if call.status == 200 else "deadline (504)"
    if call.status == 200:
        return "gave up after the status line" if not call.replies else "gave up mid-stream"
    message = str(last.get("error", ""))
    if call.status == 503:
        return "503 queue full" if "maximum pending" in message else "503 no slot in time"
    return f"{call.status} {message[:40]}"


# --- waits ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wait:
    """A request's wait for its slot, split into the live work ahead of it and the rest."""

    call: Call
    wait: float  # seconds from its arrival to its slot
    live_ahead: float  # of which every slot did work for a client still waiting

    @property
    def excess(self) -> float:
        return self.wait - self.live_ahead


@dataclass(frozen=True)
class Held:
    start: int
    end: int
    live_until: int  # its client stopped waiting (or its deadline passed): the slot's work after it is for no one
    read: int  # when its prompt had been read (its end if it never was): the prompt gate's holder until then


def holders(outcome: Outcome) -> dict[str, Held]:
    leg, intervals = outcome.leg, outcome.intervals
    services = intervals.services.get(leg.service, {})
    found: dict[str, Held] = {}
    for call in outcome.calls:
        if call.trace not in services or (call.fate == "deadline" and not leg.shared):
            continue
        start, end = services[call.trace]
        # Its client waits no longer once it has hung up or has its answer or error (the slot's work is then done,
        # or for no one); nor, on the deadline proxy, once the deadline has passed.
        live_until = min(end, call.ended or end)
        if call.fate == "deadline" and call.trace in intervals.servers:
            live_until = min(live_until, intervals.servers[call.trace] + int(leg.strict_timeout * _NS))
        found[call.trace] = Held(start, end, live_until, min(end, intervals.read.get(call.trace, end)))
    return found


def waits(outcome: Outcome) -> list[Wait]:
    held = holders(outcome)
    ordered = sorted(held.values(), key=lambda each: each.start)
    starts = [each.start for each in ordered]
    found = []
    for call in outcome.calls:
        mine, arrival = held.get(call.trace), outcome.intervals.servers.get(call.trace)
        if mine is None or arrival is None or mine.start <= arrival:
            continue
        ahead = ordered[: bisect.bisect_left(starts, mine.start)]
        live = [(max(each.start, arrival), min(each.live_until, mine.start)) for each in ahead]
        busy = _overlapping([(a, b) for a, b in live if b > a], outcome.leg.capacity)
        if outcome.leg.prompt_gate:
            reading = [(max(each.start, arrival), min(each.read, each.live_until, mine.start)) for each in ahead]
            busy += [(a, b) for a, b in reading if b > a]
        found.append(Wait(call, (mine.start - arrival) / _NS, _length(busy) / _NS))
    return found


def _overlapping(spans: list[tuple[int, int]], capacity: int) -> list[tuple[int, int]]:
    """The stretches of time in which at least ``capacity`` of ``spans`` overlap."""
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    found, depth, since = [], 0, 0
    for at, step in events:
        if depth >= capacity and at > since:
            found.append((since, at))
        depth += step
        since = at
    return found


def _length(stretches: list[tuple[int, int]]) -> int:
    """How long the union of ``stretches`` lasts."""
    total, reach = 0, 0
    for a, b in sorted(stretches):
        if b > reach:
            total += b - max(a, reach)
            reach = b
    return total


def wasted(outcome: Outcome) -> tuple[float, float, int]:
    """Slot time spent after the holder's client stopped waiting (or its deadline passed), all slot time, and how many
    holders got their slot only after that."""
    held = holders(outcome).values()
    after = sum(max(0, each.end - max(each.start, each.live_until)) for each in held) / _NS
    late = sum(each.live_until <= each.start for each in held)
    return after, sum(each.end - each.start for each in held) / _NS, late


# --- the report -------------------------------------------------------------------------------------------------------


def _quantile(numbers: list[float], q: float) -> float:
    ordered = sorted(numbers)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _s(value: float) -> str:
    return f"{value:.2f} s"


def leg_section(outcome: Outcome) -> list[str]:
    leg, calls = outcome.leg, outcome.calls
    lines = [f"## {leg.name}", "", leg.description, ""]
    lines += [
        f"- {len(calls)} requests in {outcome.seconds:.0f} s ({len(calls) / outcome.seconds:.2f}/s), then "
        f"{outcome.drain:.1f} s until everything let go; other processes used {outcome.foreign:.0%} of the machine",
        *(f"- {note}" for note in outcome.notes),
        "",
        "### Requests by fate and by what their clients saw",
        "",
    ]
    kinds = sorted({seen(call) for call in calls})
    by = Counter((call.fate, seen(call)) for call in calls)
    lines += ["| client saw | " + " | ".join(FATES) + " | all |", "|---|" + "---|" * (len(FATES) + 1)]
    for kind in kinds:
        row = [by[(fate, kind)] for fate in FATES]
        lines.append(f"| {kind} | " + " | ".join(str(n) for n in row) + f" | {sum(row)} |")
    per_kind = Counter(call.kind for call in calls)
    lines += ["", "Requests by kind: " + ", ".join(f"{kind} {n}" for kind, n in sorted(per_kind.items())), ""]
    lines += [
        "### What the proxy counted (`mistral_http_requests_total`)",
        "",
        "| status | error_type | requests |",
        "|---|---|---|",
    ]
    lines += [f"| {status} | {error} | {n} |" for (status, error), n in sorted(outcome.counted.items())]
    lines += ["", *wait_section(outcome), *kept_section(outcome), "### Afterwards", "", "| check | value | |"]
    lines += ["|---|---|---|"]
    lines += [f"| {name} | {value} | {'ok' if good else '**wrong**'} |" for name, value, good in outcome.checks]
    return [*lines, ""]


def wait_section(outcome: Outcome) -> list[str]:
    found = waits(outcome)
    after, total, late = wasted(outcome)
    slots = f"{outcome.leg.capacity} slot{'s' if outcome.leg.capacity > 1 else ''}"
    lines = [f"### Waiting for a slot ({slots}: `{outcome.leg.service}` spans)", ""]
    if not found:
        return [*lines, "No request reached a slot.", ""]
    queued = [each for each in found if each.live_ahead > 0.1]
    ratios = [each.wait / each.live_ahead for each in queued]
    worst = max(found, key=lambda each: each.excess)
    gated = outcome.leg.prompt_gate
    gate = ", or a prompt being read for one: one at a time" if gated else ""
    gone = ", or reading a prompt for one" if gated else ""
    lines += [
        "| | median | p99 | max |",
        "|---|---|---|---|",
        f"| wait for the slot ({len(found)} requests that got one) | {_s(statistics.median(w.wait for w in found))} "
        f"| {_s(_quantile([w.wait for w in found], 0.99))} | {_s(max(w.wait for w in found))} |",
        f"| of it, live work ahead (every slot busy for a client still waiting{gate}) "
        f"| {_s(statistics.median(w.live_ahead for w in found))} | {_s(_quantile([w.live_ahead for w in found], 0.99))}"
        f" | {_s(max(w.live_ahead for w in found))} |",
        f"| beyond it (a slot idle, or working for a client gone{gone}) "
        f"| {_s(statistics.median(w.excess for w in found))} "
        f"| {_s(_quantile([w.excess for w in found], 0.99))} | {_s(worst.excess)} |",
    ]
    if ratios:
        lines.append(
            f"| wait ÷ live work ahead ({len(queued)} requests with more than 0.1 s ahead) "
            f"| {statistics.median(ratios):.2f}× | {_quantile(ratios, 0.99):.2f}× | {max(ratios):.2f}× |"
        )
    lines += [
        "",
        f"- the longest wait beyond the live work ahead: {_s(worst.excess)} of {_s(worst.wait)} "
        f"(#{worst.call.number}, {worst.call.kind}, {'streamed' if worst.call.stream else 'whole'})",
        f"- slot time spent after its client had stopped waiting (hung up, or had its error) or its deadline passed: "
        f"{_s(after)} of {_s(total)} "
        f"({after / total:.1%}); {late} request(s) got their slot only after that"
        if total
        else "- no slot time",
        "",
    ]
    return lines


def kept_section(outcome: Outcome, rows: int = 8) -> list[str]:
    """The slot's holders that kept it longest after their client stopped waiting or their deadline passed."""
    calls = {call.trace: call for call in outcome.calls}
    arrivals = outcome.intervals.servers
    kept = sorted(
        ((trace, each) for trace, each in holders(outcome).items() if each.end > max(each.start, each.live_until)),
        key=lambda item: item[1].end - max(item[1].start, item[1].live_until),
        reverse=True,
    )
    if not kept:
        return []
    lines = [
        "Slot holders that kept it longest after their client stopped waiting (or their deadline passed):",
        "",
        "| request | kind | fate | client saw | arrived → slot | slot held | of it, after the client stopped waiting |",
        "|---|---|---|---|---|---|---|",
    ]
    for trace, each in kept[:rows]:
        call = calls[trace]
        waited = (each.start - arrivals[trace]) / _NS if trace in arrivals else float("nan")
        after = (each.end - max(each.start, each.live_until)) / _NS
        mode = "streamed" if call.stream else "whole"
        lines.append(
            f"| #{call.number} | {call.kind}, {mode} | {call.fate} | {seen(call)} | {_s(waited)} "
            f"| {_s((each.end - each.start) / _NS)} | {_s(after)} |"
        )
    return [*lines, ""]


def render(outcomes: list[Outcome], options: argparse.Namespace, argv: Sequence[str]) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            "# Session soak results (issue 21)",
            "",
            f"- date: {now}",
            f"- machine: {run.machine()}",
            f"- commit: {options.commit}",
            f"- command: `{' '.join(['python bench/session_soak.py', *argv])}`",
            f"- method: for {options.duration:g} s per leg, simulated Open WebUI users (tests/sessions.py, seed "
            f"{options.seed}) hold chat sessions: a chat with its whole history (a fifth of them not streamed, half "
            "the sessions starting with a long history), the title and tags after the first answer and the "
            "follow-ups after each, sent while the next chat starts. Fates: chats 60 % answered, 15 % given up "
            "(a random wait, then the connection closed), 10 % given up after 1-5 lines, 15 % sent to the deadline "
            "proxy; background requests 75 % answered, 15 % given up, 10 % to the deadline proxy. A request's wait "
            "is from its SERVER span's start to its slot's span; the live work ahead is the part of it during which "
            "every slot worked for a client still waiting (not hung up, without its answer or error yet, its "
            "deadline not passed), or, on the GGUF engine, which reads one prompt at a time, a prompt was read for "
            "one (until its span's 'prompt read' event); the rest is a wait beyond its own work and the queue ahead "
            "of it. Telemetry on, "
            "spans kept in memory.",
            *(f"- {note}" for note in options.notes),
            "",
            *(line for outcome in outcomes for line in leg_section(outcome)),
        ]
    )


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of users per leg")
    parser.add_argument("--legs", default=",".join(LEGS), help="in-process, http or both (comma-separated)")
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--drain", type=float, default=600.0, help="longest wait for everything to let go")
    parser.add_argument("--output", type=Path, default=run.BENCH / "results-session-soak.md")
    options = parser.parse_args(argv)
    options.legs = [leg.strip() for leg in options.legs.split(",") if leg.strip()]
    if unknown := set(options.legs) - set(LEGS):
        parser.error(f"unknown legs: {', '.join(sorted(unknown))}")
    options.notes = []
    return options


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    options = parse(argv)
    options.commit, code = run.commit(), run.code_state()
    outcomes = [run_leg(IN_PROCESS if name == "in-process" else HTTP, options) for name in options.legs]
    if run.code_state() != code:
        options.notes.append("**the proxy's code (app/, otel/) changed during the run**")
    run.publish(render(outcomes, options, argv), options.output)
    wrong = [
        f"{outcome.leg.name}: {name} = {value}"
        for outcome in outcomes
        for name, value, good in outcome.checks
        if not good
    ]
    for line in wrong:
        print(f"WRONG {line}", file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
