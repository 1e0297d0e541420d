"""JVB sidecar: publish bridge load as CloudWatch EMF lines on stdout and hold ECS task
scale-in protection while the bridge hosts conferences. Stdlib only; a failed iteration is
logged and retried, never fatal."""

import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request

MAX_MINUTES = 2880  # the longest protection the agent accepts
UNITS = {"Participants": "Count", "Conferences": "Count", "StressLevel": "None"}


class Failed(Exception):
    pass


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _is_num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _env_num(env, name, default, cast, low):
    try:
        return max(low, cast(env.get(name) or default))
    except ValueError:
        return default


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
        self.stats_url = env.get("BRIDGE_STATS_URL") or "http://127.0.0.1:8080/colibri/stats"
        agent = env.get("ECS_AGENT_URI", "").rstrip("/")
        self.agent_url = agent and agent + "/task-protection/v1/state"
        self.namespace = env.get("METRIC_NAMESPACE") or "pcls/Jitsi"
        self.stack = env.get("STACK") or "unknown"
        self.interval = _env_num(env, "GUARD_INTERVAL", 15.0, float, 0.05)
        self.minutes = min(MAX_MINUTES, _env_num(env, "PROTECTION_MINUTES", 60, int, 1))
        self.idle_reads = _env_num(env, "IDLE_READS", 2, int, 1)
        self.clock, self.wall, self.sleep, self.out, self.err = clock, wall, sleep, out, err
        self.protected = None  # last state the agent confirmed; None = unknown
        self.expires = 0.0  # clock() when the protection we set lapses
        self.idle = 0
        self.failures = 0
        self.stopping = False

    def log(self, msg: str) -> None:
        print("bridge-guard: " + msg.replace("\n", " "), file=self.err, flush=True)

    def _call(self, url, data=None):
        req = urllib.request.Request(url, data=data, method="PUT" if data else "GET")
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

    def emit(self, stats: dict) -> None:
        values = {"Conferences": stats["conferences"]}
        # local endpoints first: relayed endpoints are not this bridge's load
        for key in ("local_endpoints", "participants", "endpoints"):
            if _is_num(stats.get(key)):
                values["Participants"] = stats[key]
                break
        if _is_num(stats.get("stress_level")):
            values["StressLevel"] = stats["stress_level"]
        # declare only metrics that have a value in this line
        metrics = [{"Name": k, "Unit": UNITS[k]} for k in sorted(values)]
        directive = {"Namespace": self.namespace, "Dimensions": [["Stack"]], "Metrics": metrics}
        doc = {
            "_aws": {"Timestamp": int(self.wall() * 1000), "CloudWatchMetrics": [directive]},
            "Stack": self.stack,
            **values,
        }
        print(json.dumps(doc, sort_keys=True), file=self.out, flush=True)

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

    def run(self) -> None:
        self.log(f"started: stats {self.stats_url}, every {self.interval:g}s")
        while not self.stopping:
            delay = self.step()
            if not self.stopping:
                self.sleep(delay)


def main() -> None:
    guard = Guard()

    def stop(signum, frame):
        guard.stopping = True
        raise SystemExit(0)  # also interrupts a sleep or a pending request

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    guard.run()


if __name__ == "__main__":
    main()
