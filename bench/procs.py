"""Processes under test: start one pinned to a core, wait until it answers, read its CPU time and peak RSS."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for the tests' port picker
# below the ephemeral range, so that no outgoing socket takes a port between its pick and its bind
from scripts.stack import free_port as free_port  # noqa: E402

_TICKS = os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
        children = [int(child) for task in tasks for child in (task / "children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []
    return children + [grandchild for child in children for grandchild in descendants(child)]


def _own_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return sum(int(value) for value in fields[11:15]) / _TICKS  # utime stime cutime cstime


def tree_cpu_seconds(pid: int) -> float:
    """user+sys of a process, its reaped children and its live descendants."""
    return sum(_own_cpu_seconds(each) for each in [pid, *descendants(pid)])


def core_seconds() -> dict[str, tuple[float, float]]:
    """Per core, from /proc/stat: (busy, stolen by the hypervisor) seconds since boot."""
    cores = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in values[:8])
            cores[name.removeprefix("cpu")] = ((user + nice + system + irq + softirq) / _TICKS, steal / _TICKS)
    return cores


def _peak_kb(pid: int) -> int:
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def peak_rss_mb(pid: int) -> float:
    """VmHWM of the process, plus its live descendants' (an upper bound when there are several)."""
    return sum(_peak_kb(each) for each in [pid, *descendants(pid)]) / 1024


def http_status(url: str, timeout: float = 1.0) -> int | None:
    """The status of a GET, or None when nothing answers."""
    host_port, _, path = url.removeprefix("http://").partition("/")
    host, _, port = host_port.partition(":")
    connection = http.client.HTTPConnection(host, int(port or 80), timeout=timeout)
    try:
        connection.request("GET", "/" + path)
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        connection.close()


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    ready_seconds: float
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class StartError(RuntimeError):
    pass


def start(
    name: str,
    command: Sequence[str],
    *,
    url: str,
    ready_path: str,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    core: int | None = None,
    timeout: float = 60.0,
) -> Server:
    """Start ``command`` (pinned to ``core``) and wait for a 200 from ``url + ready_path``; the wait is timed."""
    pin = (lambda: os.sched_setaffinity(0, {core})) if core is not None else None
    with log.open("wb") as output:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT, preexec_fn=pin, start_new_session=True
        )
    while time.perf_counter() - started < timeout:
        if http_status(url + ready_path, timeout=0.5) == 200:
            return Server(name, process, url, time.perf_counter() - started, log)
        if process.poll() is not None:
            break
        time.sleep(0.005)
    elapsed = time.perf_counter() - started
    Server(name, process, url, elapsed, log).stop()
    tail = log.read_text(errors="replace")[-2000:]
    raise StartError(f"{name} did not answer {ready_path} within {elapsed:.1f} s; its output ends:\n{tail}")


def _busy(cores: dict[str, tuple[float, float]], before: dict[str, tuple[float, float]]) -> float:
    return max(now[0] - before[core][0] for core, now in cores.items())


def settle(pids: Sequence[int], interval: float = 0.25, timeout: float = 20.0) -> bool:
    """Wait until the processes are idle (≤ one clock tick each in ``interval``) and no core is more than 10 % busy
    (another program, a telemetry exporter still flushing); False if that did not happen within ``timeout``."""
    started = time.perf_counter()
    previous, cores = [tree_cpu_seconds(pid) for pid in pids], core_seconds()
    while time.perf_counter() - started < timeout:
        time.sleep(interval)
        current, now = [tree_cpu_seconds(pid) for pid in pids], core_seconds()
        idle = all(after - before <= 1.0 / _TICKS for after, before in zip(current, previous, strict=True))
        if idle and _busy(now, cores) <= 0.1 * interval:
            return True
        previous, cores = current, now
    return False
