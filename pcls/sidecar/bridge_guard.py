"""JVB sidecar: publish bridge load and XMPP health as CloudWatch EMF lines on stdout, hold ECS
task scale-in protection while the bridge hosts conferences, and on SIGTERM drain the bridge
(no new conferences, participants moved to other bridges by jicofo) before the bridge stops.
Stdlib only; a failed iteration is logged and retried, never fatal."""

import json
import os
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

MAX_MINUTES = 2880  # the longest protection the agent accepts
UNITS = {
    "Participants": "Count",
    "Conferences": "Count",
    "StressLevel": "None",
    "XmppConnected": "None",
    "EarlyStops": "Count",
}
NICK_PREFIX = "jvb-"  # the jvb entrypoint names the bridge jvb-<ECS task id> in the brewery


class Failed(Exception):
    pass


class Stop(BaseException):
    """Raised by the SIGTERM handler: interrupts a sleep or a request, never caught as an error."""


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _is_num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _env_num(env, name, default, cast, low):
    try:
        return max(low, cast(env.get(name) or default))
    except ValueError:
        return default


def _refused(exc: BaseException) -> bool:
    """Nothing listens there: the bridge process is gone."""
    reason = getattr(exc, "reason", exc)
    return isinstance(reason, ConnectionRefusedError)


def _share(part, whole):
    if _is_num(part) and _is_num(whole) and whole > 0:
        return max(0.0, min(1.0, part / whole))
    return None


def participants(stats: dict):
    # local endpoints first: relayed endpoints are not this bridge's load
    for key in ("local_endpoints", "participants", "endpoints"):
        if _is_num(stats.get(key)):
            return stats[key]
    return None


class Guard:
    def __init__(
        self,
        env=os.environ,
        clock=time.monotonic,
        wall=time.time,
        sleep=time.sleep,
        out=sys.stdout,
        err=sys.stderr,
    ):
        self.bridge = (env.get("BRIDGE_URL") or "http://127.0.0.1:8080").rstrip("/")
        self.stats_url = self.bridge + "/colibri/stats"
        agent = env.get("ECS_AGENT_URI", "").rstrip("/")
        self.agent_url = agent and agent + "/task-protection/v1/state"
        self.metadata = env.get("ECS_CONTAINER_METADATA_URI_V4", "").rstrip("/")
        self.jicofos = [u.strip().rstrip("/") for u in env.get("JICOFO_URLS", "").split(",")]
        self.jicofos = [u for u in self.jicofos if u]
        self.nick = env.get("BRIDGE_NICKNAME") or None
        self.namespace = env.get("METRIC_NAMESPACE") or "pcls/Jitsi"
        self.stack = env.get("STACK") or "unknown"
        self.interval = _env_num(env, "GUARD_INTERVAL", 15.0, float, 0.05)
        self.minutes = min(MAX_MINUTES, _env_num(env, "PROTECTION_MINUTES", 60, int, 1))
        self.idle_reads = _env_num(env, "IDLE_READS", 2, int, 1)
        self.drain_seconds = _env_num(env, "DRAIN_SECONDS", 90.0, float, 0.0)
        self.poll = _env_num(env, "DRAIN_POLL", 1.0, float, 0.01)
        self.presence_wait = _env_num(env, "PRESENCE_WAIT", 6.0, float, 0.0)
        self.move_retry = _env_num(env, "MOVE_RETRY", 15.0, float, 0.1)
        self.early = _env_num(env, "EARLY_STOP_SECONDS", 900.0, float, 0.0)
        self.clock, self.wall, self.sleep, self.out, self.err = clock, wall, sleep, out, err
        self.started = clock()
        self.protected = None  # last state the agent confirmed; None = unknown
        self.expires = 0.0  # clock() when the protection we set lapses
        self.idle = 0
        self.failures = 0
        self.xmpp_ok = None
        self.stopping = False
        self.stop_at = None  # clock() when SIGTERM arrived
        self.said = set()  # drain messages already logged once

    def log(self, msg: str) -> None:
        print("bridge-guard: " + msg.replace("\n", " "), file=self.err, flush=True)

    def once(self, key, msg: str) -> None:
        if key not in self.said:
            self.said.add(key)
            self.log(msg)

    def _call(self, url, data=None, method=None):
        method = method or ("PUT" if data else "GET")
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=3) as resp:
                return json.loads(resp.read().decode() or "null")
        except urllib.error.HTTPError as exc:  # keep the server's reason for the log line
            body = exc.read()[:300].decode(errors="replace")
            raise OSError(f"HTTP {exc.code} {body}") from None

    def read_stats(self) -> dict:
        stats = self._call(self.stats_url)
        if not isinstance(stats, dict) or not _is_num(stats.get("conferences")):
            raise ValueError("no numeric 'conferences' in stats")
        return stats

    def _line(self, values: dict) -> None:
        # declare only metrics that have a value in this line
        metrics = [{"Name": k, "Unit": UNITS[k]} for k in sorted(values)]
        directive = {"Namespace": self.namespace, "Dimensions": [["Stack"]], "Metrics": metrics}
        doc = {
            "_aws": {"Timestamp": int(self.wall() * 1000), "CloudWatchMetrics": [directive]},
            "Stack": self.stack,
            **values,
        }
        print(json.dumps(doc, sort_keys=True), file=self.out, flush=True)

    def emit(self, stats: dict) -> None:
        values = {"Conferences": stats["conferences"]}
        if (count := participants(stats)) is not None:
            values["Participants"] = count
        if _is_num(stats.get("stress_level")):
            values["StressLevel"] = stats["stress_level"]
        # XMPP clients connected and brewery rooms joined, as a share of those configured
        shares = [
            s
            for s in (
                _share(stats.get("muc_clients_connected"), stats.get("muc_clients_configured")),
                _share(stats.get("mucs_joined"), stats.get("mucs_configured")),
            )
            if s is not None
        ]
        if shares:
            values["XmppConnected"] = min(shares)
            ok = values["XmppConnected"] >= 1
            if ok != self.xmpp_ok:
                self.xmpp_ok = ok
                self.log(
                    "xmpp: connected to every shard"
                    if ok
                    else "xmpp: NOT connected to every shard: "
                    f"{stats.get('muc_clients_connected')}/{stats.get('muc_clients_configured')} "
                    f"clients, {stats.get('mucs_joined')}/{stats.get('mucs_configured')} rooms"
                )
        self._line(values)

    def set_protection(self, enabled: bool) -> None:
        if not self.agent_url:
            raise RuntimeError("ECS_AGENT_URI is not set")
        body = {"ProtectionEnabled": enabled}
        if enabled:
            body["ExpiresInMinutes"] = self.minutes
        started = self.clock()  # expiry counted from before the call: renews early, not late
        reply = self._call(self.agent_url, json.dumps(body).encode())
        reply = reply if isinstance(reply, dict) else {"body": reply}
        bad = reply.get("failure") or reply.get("error")
        if bad or not isinstance(reply.get("protection"), dict):
            raise RuntimeError("agent refused: " + json.dumps(bad or reply)[:300])
        self.protected = enabled
        self.expires = started + self.minutes * 60 if enabled else 0.0
        self.log(f"protection on for {self.minutes} min" if enabled else "protection off")

    def step(self) -> float:
        """One iteration; returns the seconds to sleep before the next."""
        try:
            self._step()
            self.failures = 0
        except Exception as exc:  # one bad read or call must never stop the guard
            self.failures += 1
            self.log(str(exc) if isinstance(exc, Failed) else "unexpected " + _why(exc))
        # back off after failures, but not past 30 s so the metric keeps flowing
        return min(self.interval * 2**self.failures, max(self.interval, 30.0))

    def _step(self) -> None:
        try:
            stats = self.read_stats()
        except Exception as exc:
            # no metric and no renewal: a dead bridge's protection lapses by expiry
            raise Failed("bridge stats unavailable: " + _why(exc)) from exc
        self.emit(stats)
        want = None
        if stats["conferences"] > 0:
            self.idle = 0
            # renew when under a third of the period remains (minutes * 60 / 3 seconds)
            if not self.protected or self.expires - self.clock() < self.minutes * 20:
                want = True
        else:
            self.idle += 1
            if self.idle >= self.idle_reads and self.protected is not False:
                want = False
        if want is not None:
            try:
                self.set_protection(want)
            except Exception as exc:  # state is unchanged, so the next loop retries
                raise Failed("agent call failed: " + _why(exc)) from exc

    # -- stopping ------------------------------------------------------------------------

    def nickname(self):
        """The bridge's nickname in the brewery room: jvb-<ECS task id>, as its entrypoint sets."""
        if self.nick is None and self.metadata:
            try:
                arn = self._call(self.metadata + "/task")["TaskARN"]
                task = arn.rsplit("/", 1)[-1]
                if task and all(c in "0123456789abcdef" for c in task):
                    self.nick = NICK_PREFIX + task
            except Exception as exc:
                self.log("drain: task metadata unavailable: " + _why(exc))
        return self.nick

    def jicofo_ready(self, url: str, nick: str, elapsed: float) -> bool:
        """True once jicofo sees this bridge draining and knows another bridge to move to."""
        try:
            bridges = self._call(url + "/debug")["bridge_selector"]["bridge"]
            if not isinstance(bridges, dict):
                raise TypeError("bridge_selector.bridge is not an object")
        except Exception as exc:
            # jicofo's view unknown: trust one presence interval to have carried the drain
            self.once(("view", url), f"drain: no bridge list from {url} ({_why(exc)})")
            return elapsed >= self.presence_wait
        me, others = None, 0
        for jid, b in bridges.items():
            b = b if isinstance(b, dict) else {}
            if jid.rsplit("/", 1)[-1] == nick:
                me = b
            elif b.get("operational", True) and not any(
                b.get(k) for k in ("drain", "shutting-down", "graceful-shutdown")
            ):
                others += 1
        if me is None:
            self.once(("unknown", url), f"drain: {url} does not list bridge {nick}")
            return False
        if not me.get("drain"):
            return False  # the drain has not reached jicofo yet (next presence)
        if not others:
            self.once(("alone", url), f"drain: {url} has no other bridge; participants stay")
            return False
        return True

    def move(self, url: str, nick: str) -> None:
        query = urllib.parse.urlencode({"bridge": nick, "fraction": "1"})
        try:
            reply = self._call(f"{url}/move-endpoints/move-fraction?{query}")
            reply = reply if isinstance(reply, dict) else {}
            self.log(
                f"drain: {url} moved {reply.get('movedEndpoints', '?')} participant(s) of "
                f"{reply.get('conferences', '?')} conference(s)"
            )
        except Exception as exc:
            self.log(f"drain: move by {url} failed: {_why(exc)}")

    def shutdown(self) -> None:
        """Drain: no new conferences, jicofo moves the participants away, stop when none is
        left or the drain time is up. The bridge itself stops after this process (ECS stops
        a task's containers in reverse dependsOn order)."""
        start = self.stop_at if self.stop_at is not None else self.clock()
        deadline = start + self.drain_seconds
        lived = start - self.started
        self._line({"EarlyStops": 1 if lived < self.early else 0})
        self.log(f"stop after {lived:.0f}s up: draining for at most {self.drain_seconds:g}s")
        try:
            self._call(self.bridge + "/colibri/drain/enable", b"", "POST")
            self.log("drain: bridge takes no new conferences")
        except Exception as exc:
            if _refused(exc):
                self.log("drain: bridge is gone, nothing to drain")
                return
            self.log("drain: enable failed: " + _why(exc))
        nick = self.nickname() if self.jicofos else None
        moved = {}  # jicofo url -> clock() of its last move
        left = "?"
        while True:
            try:
                stats = self.read_stats()
                left = participants(stats)
                if stats["conferences"] == 0 or left == 0:
                    self.log(f"drain: done after {self.clock() - start:.1f}s, no participant left")
                    return
            except Exception as exc:
                if _refused(exc):
                    self.log("drain: bridge is gone")
                    return
                self.once("stats", "drain: bridge stats unavailable: " + _why(exc))
            now = self.clock()
            if now >= deadline:
                self.log(f"drain: time is up with {left} participant(s) left; stopping")
                return
            for url in self.jicofos if nick else ():
                if now - moved.get(url, -1e18) >= self.move_retry and self.jicofo_ready(
                    url, nick, now - start
                ):
                    moved[url] = self.clock()
                    self.move(url, nick)
            self.sleep(max(0.0, min(self.poll, deadline - self.clock())))

    def run(self) -> None:
        self.log(f"started: bridge {self.bridge}, every {self.interval:g}s")
        try:
            while not self.stopping:
                delay = self.step()
                if not self.stopping:
                    self.sleep(delay)
        except Stop:
            pass
        self.shutdown()


def main() -> None:
    guard = Guard()

    def stop(signum, frame):
        if guard.stopping:  # already draining: ECS's SIGKILL at stopTimeout is the backstop
            return
        guard.stopping = True
        guard.stop_at = time.monotonic()
        raise Stop  # interrupts a sleep or a pending request

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    guard.run()


if __name__ == "__main__":
    main()
