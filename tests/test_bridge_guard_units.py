"""The bridge guard's decisions with its HTTP calls and its clock replaced: protection replies,
back-off, renewal, what jicofo's bridge list means, the drain loop and its deadline, the
nickname, the settings. (tests/test_bridge_guard*.py run it against real local servers.)"""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.parse
from typing import Any

import pytest

from pcls.sidecar import bridge_guard as bg

BRIDGE = "http://127.0.0.1:8080"
AGENT = "http://agent/api/t"
JICOFO = "http://jicofo:8888"
NICK = "jvb-0123abcd"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(round(s, 3))
        self.now += s


class Calls:
    """The guard's _call: answers by URL prefix; an answer may be a function of the call."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.log: list[tuple[str, Any, Any]] = []

    def __call__(self, url: str, data: Any = None, method: Any = None) -> Any:
        self.log.append((url, data, method))
        for prefix, answer in self.answers.items():
            if url.startswith(prefix):
                if callable(answer):
                    answer = answer(url, data)
                if isinstance(answer, BaseException):
                    raise answer
                return answer
        raise AssertionError(f"unexpected call {url}")

    def urls(self) -> list[str]:
        return [u for u, _, _ in self.log]


def guard(answers: dict[str, Any], **env: str) -> tuple[bg.Guard, Clock, Calls]:
    clock = Clock()
    g = bg.Guard(
        env={"ECS_AGENT_URI": AGENT, "STACK": "s", **env},
        clock=clock,
        wall=lambda: 1700000000.5,
        sleep=clock.sleep,
        out=io.StringIO(),
        err=io.StringIO(),
    )
    calls = Calls(answers)
    g._call = calls  # type: ignore[method-assign]
    return g, clock, calls


def logged(g: bg.Guard) -> list[str]:
    return [line.removeprefix("bridge-guard: ") for line in g.err.getvalue().splitlines()]


def lines(g: bg.Guard) -> list[dict[str, Any]]:
    return [json.loads(x) for x in g.out.getvalue().splitlines()]


REFUSED = urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
OK = {"protection": {"ProtectionEnabled": True}}


# -- protection ----------------------------------------------------------------------------


def test_protection_on_and_off() -> None:
    g, _, calls = guard({AGENT: OK}, PROTECTION_MINUTES="30")
    g.set_protection(True)
    url, data, _ = calls.log[0]
    assert url == AGENT + "/task-protection/v1/state"
    assert json.loads(data) == {"ProtectionEnabled": True, "ExpiresInMinutes": 30}
    assert (g.protected, g.expires) == (True, 100.0 + 30 * 60)
    g.set_protection(False)
    assert json.loads(calls.log[1][1]) == {"ProtectionEnabled": False}
    assert (g.protected, g.expires) == (False, 0.0)
    assert logged(g) == ["protection on for 30 min", "protection off"]


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ({"failure": {"Reason": "TASK_NOT_FOUND"}}, '{"Reason": "TASK_NOT_FOUND"}'),
        ({"error": {"Code": "AccessDenied"}, "protection": {}}, '{"Code": "AccessDenied"}'),
        ({"nothing": 1}, '{"nothing": 1}'),
        ({"protection": "yes"}, '{"protection": "yes"}'),
        ([1, 2], '{"body": [1, 2]}'),
        ({"failure": "x" * 400}, json.dumps("x" * 400)[:300]),
    ],
)
def test_an_agent_refusal_changes_nothing(reply: Any, why: str) -> None:
    g, _, _ = guard({AGENT: reply})
    with pytest.raises(RuntimeError) as err:
        g.set_protection(True)
    assert str(err.value) == "agent refused: " + why
    assert (g.protected, g.expires) == (None, 0.0)


def test_no_agent_uri() -> None:
    g, _, _ = guard({})
    g.agent_url = ""
    with pytest.raises(RuntimeError) as err:
        g.set_protection(True)
    assert str(err.value) == "ECS_AGENT_URI is not set"


def test_failures_back_off_doubling_up_to_30_seconds_and_reset() -> None:
    state = {"ok": False}

    def stats(url: str, data: Any) -> Any:
        return {"conferences": 0} if state["ok"] else OSError("down")

    g, _, _ = guard({BRIDGE + "/colibri/stats": stats, AGENT: OK}, GUARD_INTERVAL="4")
    assert [g.step() for _ in range(5)] == [8.0, 16.0, 30.0, 30.0, 30.0]
    assert g.failures == 5
    assert logged(g)[0] == "bridge stats unavailable: OSError: down"
    state["ok"] = True
    assert g.step() == 4.0 and g.failures == 0
    g2, _, _ = guard({BRIDGE + "/colibri/stats": {"conferences": 0}}, GUARD_INTERVAL="45")
    assert g2.step() == 45.0  # the interval itself when it is over 30 s
    g2.read_stats = lambda: 1 / 0  # type: ignore[assignment,method-assign,misc]
    g2._step = lambda: 1 / 0  # type: ignore[method-assign]
    assert g2.step() == 45.0
    assert logged(g2)[-1] == "unexpected ZeroDivisionError: division by zero"


def test_renewal_when_less_than_a_third_is_left() -> None:
    g, clock, calls = guard(
        {BRIDGE + "/colibri/stats": {"conferences": 1}, AGENT: OK}, PROTECTION_MINUTES="3"
    )
    g.step()
    assert g.expires == 100.0 + 180
    clock.now = g.expires - 60  # exactly a third left: not yet
    g.step()
    assert len([u for u in calls.urls() if u.startswith(AGENT)]) == 1
    clock.now += 0.5
    g.step()
    assert len([u for u in calls.urls() if u.startswith(AGENT)]) == 2


def test_an_agent_failure_is_retried_on_the_next_read() -> None:
    g, _, _ = guard({BRIDGE + "/colibri/stats": {"conferences": 2}, AGENT: OSError("503")})
    g.step()
    assert logged(g) == ["agent call failed: OSError: 503"]
    assert g.failures == 1 and g.protected is None


# -- metrics -------------------------------------------------------------------------------


def test_metric_lines_and_the_xmpp_log() -> None:
    g, _, _ = guard({})
    g.emit({"conferences": 1, "endpoints": 3, "stress_level": 0.25,
            "muc_clients_configured": 2, "muc_clients_connected": 1,
            "mucs_configured": 4, "mucs_joined": 3})  # fmt: skip
    g.emit({"conferences": 1, "muc_clients_configured": 2, "muc_clients_connected": 3})
    first, second = lines(g)
    assert first["Participants"] == 3 and first["StressLevel"] == 0.25
    assert first["XmppConnected"] == 0.5
    assert first["_aws"]["Timestamp"] == 1700000000500
    assert first["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "pcls/Jitsi"
    assert second["XmppConnected"] == 1.0  # never above 1
    assert logged(g) == [
        "xmpp: NOT connected to every shard: 1/2 clients, 3/4 rooms",
        "xmpp: connected to every shard",
    ]


def test_helpers() -> None:
    assert bg._refused(REFUSED) and bg._refused(ConnectionRefusedError())
    assert not bg._refused(urllib.error.URLError("timed out")) and not bg._refused(OSError())
    assert bg._share(3, 2) == 1.0 and bg._share(-1, 2) == 0.0 and bg._share(1, 0) is None
    assert bg._share(True, 2) is None
    assert bg.participants({"endpoints": 7, "participants": 5}) == 5
    assert bg.participants({"local_endpoints": 2, "participants": 5}) == 2
    assert bg.participants({"participants": "5"}) is None
    g, _, _ = guard({})
    g.once("a", "first")
    g.once("a", "again")
    g.once(("a", 1), "other")
    g.log("two\nlines")
    assert logged(g) == ["first", "other", "two lines"]


def test_settings() -> None:
    clock = Clock()
    g = bg.Guard(
        env={
            "BRIDGE_URL": "http://b:1/",
            "ECS_AGENT_URI": "http://a/x/",
            "ECS_CONTAINER_METADATA_URI_V4": "http://m/v4/",
            "JICOFO_URLS": " http://j1:8888/ , ,http://j2:8888",
            "BRIDGE_NICKNAME": "jvb-x",
            "METRIC_NAMESPACE": "ns",
            "DRAIN_SECONDS": "-5",
            "DRAIN_POLL": "0",
            "PRESENCE_WAIT": "-1",
            "MOVE_RETRY": "0",
            "EARLY_STOP_SECONDS": "60",
        },
        clock=clock,
    )
    assert (g.bridge, g.stats_url) == ("http://b:1", "http://b:1/colibri/stats")
    assert g.agent_url == "http://a/x/task-protection/v1/state"
    assert g.metadata == "http://m/v4"
    assert g.jicofos == ["http://j1:8888", "http://j2:8888"]
    assert (g.nick, g.namespace, g.stack) == ("jvb-x", "ns", "unknown")
    assert (g.drain_seconds, g.poll, g.presence_wait, g.move_retry, g.early) == (
        0.0, 0.01, 0.0, 0.1, 60.0
    )  # fmt: skip
    assert (g.started, g.protected, g.expires, g.idle, g.failures) == (100.0, None, 0.0, 0, 0)
    assert (g.xmpp_ok, g.stopping, g.stop_at, g.said) == (None, False, None, set())
    plain = bg.Guard(env={})
    assert (plain.agent_url, plain.metadata, plain.jicofos, plain.nick) == ("", "", [], None)
    assert plain.bridge == "http://127.0.0.1:8080"


# -- the drain -----------------------------------------------------------------------------


def test_nickname_from_the_task_metadata() -> None:
    g, _, calls = guard({"http://m/v4/task": {"TaskARN": "arn:aws:ecs:r:1:task/c/0123abcd"}},
                        ECS_CONTAINER_METADATA_URI_V4="http://m/v4")  # fmt: skip
    assert g.nickname() == NICK and g.nickname() == NICK
    assert calls.urls() == ["http://m/v4/task"]  # asked once
    g, _, _ = guard({"http://m/v4/task": {"TaskARN": "arn:aws:ecs:r:1:task/c/NOT-HEX"}},
                    ECS_CONTAINER_METADATA_URI_V4="http://m/v4")  # fmt: skip
    assert g.nickname() is None
    g, _, _ = guard(
        {"http://m/v4/task": OSError("no")}, ECS_CONTAINER_METADATA_URI_V4="http://m/v4"
    )
    assert g.nickname() is None
    assert logged(g) == ["drain: task metadata unavailable: OSError: no"]
    g, _, calls = guard({}, BRIDGE_NICKNAME="jvb-given", ECS_CONTAINER_METADATA_URI_V4="http://m")
    assert g.nickname() == "jvb-given" and calls.log == []
    assert guard({})[0].nickname() is None  # no metadata endpoint


def bridges(**entries: Any) -> dict[str, Any]:
    return {"bridge_selector": {"bridge": entries}}


ME = f"jvbbrewery@internal-muc.meet.jitsi/{NICK}"
OTHER = "jvbbrewery@internal-muc.meet.jitsi/jvb-other"


@pytest.mark.parametrize(
    ("view", "ready", "said"),
    [
        (bridges(**{ME: {"drain": True}, OTHER: {}}), True, []),
        (bridges(**{ME: {"drain": True}, OTHER: {"operational": False}}), False,
         [f"drain: {JICOFO} has no other bridge; participants stay"]),
        (bridges(**{ME: {"drain": True}, OTHER: {"drain": True}}), False,
         [f"drain: {JICOFO} has no other bridge; participants stay"]),
        (bridges(**{ME: {"drain": True}, OTHER: {"shutting-down": True}}), False,
         [f"drain: {JICOFO} has no other bridge; participants stay"]),
        (bridges(**{ME: {"drain": True}, OTHER: {"graceful-shutdown": True}}), False,
         [f"drain: {JICOFO} has no other bridge; participants stay"]),
        (bridges(**{ME: {"drain": True}, OTHER: "junk"}), True, []),
        (bridges(**{ME: {}, OTHER: {}}), False, []),
        (bridges(**{ME: "junk", OTHER: {}}), False, []),
        (bridges(**{OTHER: {}}), False, [f"drain: {JICOFO} does not list bridge {NICK}"]),
        (bridges(**{f"x/{NICK}/y": {"drain": True}, OTHER: {}}), False,
         [f"drain: {JICOFO} does not list bridge {NICK}"]),
        ({"bridge_selector": {"bridge": []}}, False,
         [f"drain: no bridge list from {JICOFO} (TypeError: bridge_selector.bridge is not an "
          "object)"]),
    ],
)  # fmt: skip
def test_what_jicofos_bridge_list_means(view: Any, ready: bool, said: list[str]) -> None:
    g, _, calls = guard({JICOFO + "/debug": view})
    assert g.jicofo_ready(JICOFO, NICK, 0.0) is ready
    g.jicofo_ready(JICOFO, NICK, 0.0)
    assert logged(g) == said  # each said once
    assert calls.urls()[0] == JICOFO + "/debug"


def test_without_jicofos_view_one_presence_interval_is_trusted() -> None:
    g, _, _ = guard({JICOFO + "/debug": OSError("HTTP 404")}, PRESENCE_WAIT="6")
    assert not g.jicofo_ready(JICOFO, NICK, 5.9)
    assert g.jicofo_ready(JICOFO, NICK, 6.0)
    assert logged(g) == [f"drain: no bridge list from {JICOFO} (OSError: HTTP 404)"]
    other = guard({"http://j2/debug": OSError("x"), JICOFO + "/debug": OSError("x")})[0]
    other.jicofo_ready(JICOFO, NICK, 0)
    other.jicofo_ready("http://j2", NICK, 0)
    assert len(logged(other)) == 2  # once per jicofo


def test_move_asks_for_every_participant_and_says_what_moved() -> None:
    g, _, calls = guard({JICOFO + "/move-endpoints": {"movedEndpoints": 4, "conferences": 2}})
    g.move(JICOFO, NICK)
    url = calls.urls()[0]
    assert url.startswith(JICOFO + "/move-endpoints/move-fraction?")
    assert urllib.parse.parse_qs(url.split("?", 1)[1]) == {"bridge": [NICK], "fraction": ["1"]}
    g2, _, _ = guard({JICOFO + "/move-endpoints": "odd"})
    g2.move(JICOFO, NICK)
    g3, _, _ = guard({JICOFO + "/move-endpoints": OSError("refused")})
    g3.move(JICOFO, NICK)
    assert logged(g) == [f"drain: {JICOFO} moved 4 participant(s) of 2 conference(s)"]
    assert logged(g2) == [f"drain: {JICOFO} moved ? participant(s) of ? conference(s)"]
    assert logged(g3) == [f"drain: move by {JICOFO} failed: OSError: refused"]


class Bridge:
    """The bridge's stats during a drain: participants leave once jicofo moved them."""

    def __init__(self, participants: int = 5, sticky: int = 0) -> None:
        self.participants = participants
        self.sticky = sticky
        self.moves = 0

    def stats(self, url: str, data: Any) -> Any:
        n = self.participants
        return {"conferences": 1 if n else 0, "endpoints": n}

    def move(self, url: str, data: Any) -> Any:
        self.moves += 1
        if self.sticky:
            self.sticky -= 1
            return {"movedEndpoints": 0, "conferences": 0}
        moved, self.participants = self.participants, 0
        return {"movedEndpoints": moved, "conferences": 1}


def draining(b: Bridge, view: Any = None, **env: str) -> tuple[bg.Guard, Clock, Calls]:
    answers = {
        BRIDGE + "/colibri/drain/enable": None,
        BRIDGE + "/colibri/stats": b.stats,
        JICOFO + "/debug": view
        if view is not None
        else bridges(**{ME: {"drain": True}, OTHER: {}}),
        JICOFO + "/move-endpoints": b.move,
        AGENT: OK,
    }
    settings = {"JICOFO_URLS": JICOFO, "BRIDGE_NICKNAME": NICK, "DRAIN_SECONDS": "30",
                "DRAIN_POLL": "1", "MOVE_RETRY": "15", **env}  # fmt: skip
    return guard(answers, **settings)


def test_a_drain_moves_the_participants_and_stops_when_the_bridge_is_empty() -> None:
    b = Bridge()
    g, clock, calls = draining(b, EARLY_STOP_SECONDS="900")
    clock.now = 1100.0  # 1000 s after the start: not an early stop
    g.shutdown()
    assert calls.log[0] == (BRIDGE + "/colibri/drain/enable", b"", "POST")
    assert b.moves == 1
    assert lines(g)[0]["EarlyStops"] == 0
    assert logged(g) == [
        "stop after 1000s up: draining for at most 30s",
        "drain: bridge takes no new conferences",
        f"drain: {JICOFO} moved 5 participant(s) of 1 conference(s)",
        "drain: done after 1.0s, no participant left",
    ]
    assert clock.sleeps == [1.0]


def test_a_stuck_move_is_asked_again_after_move_retry_until_the_deadline() -> None:
    b = Bridge(sticky=10)
    g, clock, _ = draining(b, DRAIN_SECONDS="40", DRAIN_POLL="2")
    g.stop_at = 100.0  # the SIGTERM's time, not the shutdown call's
    clock.now = 100.0
    g.shutdown()
    assert b.moves == 3  # at 0, 16 and 32 s: MOVE_RETRY apart
    assert logged(g)[-1] == "drain: time is up with 5 participant(s) left; stopping"
    assert sum(clock.sleeps) == pytest.approx(40.0)
    assert set(clock.sleeps) == {2.0}
    assert lines(g)[0]["EarlyStops"] == 1  # 0 s after the start


def test_the_last_sleep_ends_at_the_deadline() -> None:
    g, clock, _ = draining(Bridge(), view=bridges(**{ME: {}}), DRAIN_SECONDS="2.5")
    g.shutdown()
    assert clock.sleeps == [1.0, 1.0, 0.5]


def test_a_bridge_gone_or_failing_during_the_drain() -> None:
    g, _, calls = guard({BRIDGE + "/colibri/drain/enable": REFUSED})
    g.shutdown()
    assert logged(g)[-1] == "drain: bridge is gone, nothing to drain"
    assert len(calls.log) == 1
    state = {"n": 0}

    def stats(url: str, data: Any) -> Any:
        state["n"] += 1
        return OSError("busy") if state["n"] < 3 else REFUSED

    g, _, _ = guard({BRIDGE + "/colibri/drain/enable": OSError("HTTP 500"),
                     BRIDGE + "/colibri/stats": stats}, DRAIN_SECONDS="30")  # fmt: skip
    g.shutdown()
    assert logged(g)[1:] == [
        "drain: enable failed: OSError: HTTP 500",
        "drain: bridge stats unavailable: OSError: busy",
        "drain: bridge is gone",
    ]


def test_without_jicofo_the_drain_only_waits() -> None:
    b = Bridge()
    answers = {BRIDGE + "/colibri/drain/enable": None, BRIDGE + "/colibri/stats": b.stats}
    g, _, calls = guard(answers, DRAIN_SECONDS="3")
    g.shutdown()
    assert logged(g)[-1] == "drain: time is up with 5 participant(s) left; stopping"
    assert all(u.startswith(BRIDGE) for u in calls.urls())
    g, _, calls = guard(answers, DRAIN_SECONDS="3", JICOFO_URLS=JICOFO)  # no nickname known
    g.shutdown()
    assert all(u.startswith(BRIDGE) for u in calls.urls())


def test_run_drains_after_the_loop_stops() -> None:
    b = Bridge(participants=0)
    g, _, _ = draining(b, GUARD_INTERVAL="5")
    steps = []

    def sleep(s: float) -> None:
        steps.append(s)
        if len(steps) == 2:
            g.stopping = True

    g.sleep = sleep  # type: ignore[method-assign]
    g.run()
    assert steps == [5.0, 5.0]
    assert logged(g)[0] == f"started: bridge {BRIDGE}, every 5s"
    assert logged(g)[-1] == "drain: done after 0.0s, no participant left"

    def stop(s: float) -> None:
        raise bg.Stop()

    g2, _, _ = draining(Bridge(participants=0))
    g2.sleep = stop  # type: ignore[method-assign]
    g2.run()  # SIGTERM during a sleep: straight to the drain
    assert logged(g2)[-1] == "drain: done after 0.0s, no participant left"


def test_drain_details_the_loop_depends_on() -> None:
    # the move names this bridge; the drain is timed from the SIGTERM, not from the call
    b = Bridge()
    g, _, calls = draining(b)
    g.stop_at = 90.0
    g.shutdown()
    [move] = [u for u in calls.urls() if "/move-endpoints/" in u]
    assert urllib.parse.parse_qs(move.split("?", 1)[1])["bridge"] == [NICK]
    assert logged(g)[-1] == "drain: done after 11.0s, no participant left"

    # no conference left is done, whatever the endpoint count says; one participant is not
    g, _, _ = guard({BRIDGE + "/colibri/drain/enable": None,
                     BRIDGE + "/colibri/stats": {"conferences": 0, "endpoints": 3}})  # fmt: skip
    g.shutdown()
    assert logged(g)[-1] == "drain: done after 0.0s, no participant left"
    g, _, _ = guard({BRIDGE + "/colibri/drain/enable": None,
                     BRIDGE + "/colibri/stats": {"conferences": 1, "endpoints": 1}},
                    DRAIN_SECONDS="1")  # fmt: skip
    g.shutdown()
    assert logged(g)[-1] == "drain: time is up with 1 participant(s) left; stopping"

    # never a stats answer: how many are left is not known
    g, _, _ = guard({BRIDGE + "/colibri/drain/enable": None,
                     BRIDGE + "/colibri/stats": OSError("x")}, DRAIN_SECONDS="2")  # fmt: skip
    g.shutdown()
    assert logged(g)[-1] == "drain: time is up with ? participant(s) left; stopping"
    assert logged(g).count("drain: bridge stats unavailable: OSError: x") == 1


def test_an_unknown_jicofo_view_moves_after_the_presence_wait() -> None:
    b = Bridge()
    g, clock, calls = draining(b, view=OSError("HTTP 404"), PRESENCE_WAIT="3", DRAIN_POLL="1")
    g.shutdown()
    assert b.moves == 1
    moves = [i for i, u in enumerate(calls.urls()) if "/move-endpoints/" in u]
    assert len(moves) == 1 and clock.sleeps == [1.0, 1.0, 1.0, 1.0]  # moved at 3 s


def test_moves_are_exactly_move_retry_apart() -> None:
    b = Bridge(sticky=10)
    g, clock, calls = draining(b, DRAIN_SECONDS="31", DRAIN_POLL="5", MOVE_RETRY="15")
    times: list[float] = []
    real = b.move

    def timed(url: str, data: Any) -> Any:
        times.append(clock.now - 100.0)
        return real(url, data)

    calls.answers[JICOFO + "/move-endpoints"] = timed
    g.shutdown()
    assert times == [0.0, 15.0, 30.0]


def test_jicofos_messages_are_each_said_once() -> None:
    views = iter([bridges(**{OTHER: {}}), bridges(**{ME: {"drain": True}})])
    g, _, _ = guard({JICOFO + "/debug": lambda url, data: next(views)})
    g.jicofo_ready(JICOFO, NICK, 0)
    g.jicofo_ready(JICOFO, NICK, 0)
    assert logged(g) == [
        f"drain: {JICOFO} does not list bridge {NICK}",
        f"drain: {JICOFO} has no other bridge; participants stay",
    ]
    g, _, _ = guard({JICOFO + "/debug": OSError("x")})
    g.once("stats", "drain: bridge stats unavailable")
    g.jicofo_ready(JICOFO, NICK, 0)
    assert len(logged(g)) == 2


def test_no_jicofo_no_nickname_lookup() -> None:
    g, _, calls = guard({BRIDGE + "/colibri/drain/enable": None,
                         BRIDGE + "/colibri/stats": {"conferences": 0}},
                        ECS_CONTAINER_METADATA_URI_V4="http://m/v4")  # fmt: skip
    g.shutdown()
    assert not [u for u in calls.urls() if u.startswith("http://m/")]


def test_an_early_stop_is_one_sooner_than_the_bound() -> None:
    for early, lived, count in (("10", 10.0, 0), ("10", 9.5, 1), ("0", 0.0, 0)):
        g, clock, _ = guard({BRIDGE + "/colibri/drain/enable": REFUSED},
                            EARLY_STOP_SECONDS=early)  # fmt: skip
        clock.now += lived
        g.shutdown()
        assert lines(g)[0]["EarlyStops"] == count, (early, lived)


def test_stats_without_conferences_and_the_metric_line_as_written() -> None:
    g, _, _ = guard({BRIDGE + "/colibri/stats": {"endpoints": 1}})
    g.step()
    assert logged(g) == ["bridge stats unavailable: ValueError: no numeric 'conferences' in stats"]
    g._line({"Conferences": 1, "Participants": 2})
    raw = g.out.getvalue().splitlines()[-1]
    assert raw == json.dumps(json.loads(raw), sort_keys=True)
    low = bg.Guard(env={"PROTECTION_MINUTES": "0", "EARLY_STOP_SECONDS": "0.5", "IDLE_READS": "0"})
    assert (low.minutes, low.early, low.idle_reads) == (1, 0.5, 1)


def test_each_jicofo_is_told_about_on_its_own() -> None:
    g, _, _ = guard({JICOFO + "/debug": bridges(**{OTHER: {}}),
                     "http://j2/debug": bridges(**{OTHER: {}})})  # fmt: skip
    h, _, _ = guard({JICOFO + "/debug": bridges(**{ME: {"drain": True}}),
                     "http://j2/debug": bridges(**{ME: {"drain": True}})})  # fmt: skip
    for url in (JICOFO, "http://j2", JICOFO):
        g.jicofo_ready(url, NICK, 0)
        h.jicofo_ready(url, NICK, 0)
    assert logged(g) == [f"drain: {u} does not list bridge {NICK}" for u in (JICOFO, "http://j2")]
    assert logged(h) == [
        f"drain: {u} has no other bridge; participants stay" for u in (JICOFO, "http://j2")
    ]
