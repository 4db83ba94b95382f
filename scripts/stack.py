"""The no-Docker twin of compose.yaml: the proxy, the OpenTelemetry Collector, Jaeger, Prometheus and Alertmanager
as local processes, each run with the repository's own config file.

    python scripts/stack.py                      # embedded mistral.rs, compose's ports; Ctrl-C stops everything
    python scripts/stack.py --mistral-url http://localhost:8080 --free-ports
    python scripts/stack.py --mistral-url http://localhost:8080 --replicas 2   # HAProxy in front of two proxies

The programs are the pinned builds of scripts/build-programs.sh (built on first use, then cached). Only addresses
change: the Collector and Jaeger configs read theirs from the environment; Alertmanager and Prometheus take flags;
Prometheus's scrape and alerting targets (compose host names) are mapped onto local addresses in a generated copy
of monitoring/prometheus/prometheus.yml, which differs from it in nothing else (tests/monitoring/test_stack.py).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_CONFIG = ROOT / "monitoring" / "prometheus" / "prometheus.yml"
HAPROXY_CONFIG = ROOT / "monitoring" / "haproxy" / "haproxy.cfg"
RULES = ROOT / "monitoring" / "prometheus" / "rules"
PROGRAMS = ("otelcol", "jaeger", "prometheus", "alertmanager")
READY_TIMEOUT = 60.0
# The first start of the embedded engine may fetch the default model (93 MB).
PROXY_READY_TIMEOUT = 900.0


@dataclass
class Ports:
    """Where each listener goes. The defaults are compose's published ports; Jaeger's OTLP, health and telemetry
    ports, which compose keeps inside its network, move aside so that they do not clash with the Collector's."""

    proxy: int = 11434
    otlp_grpc: int = 4317
    otlp_http: int = 4318
    collector_prometheus: int = 8889
    collector_health: int = 13133
    collector_telemetry: int = 8888
    jaeger_query: int = 16686
    jaeger_query_grpc: int = 16685
    jaeger_otlp_grpc: int = 14317
    jaeger_otlp_http: int = 14318
    jaeger_health: int = 13134
    jaeger_telemetry: int = 8887
    prometheus: int = 9090
    alertmanager: int = 9093

    @classmethod
    def free(cls) -> Ports:
        return cls(**{f.name: free_port() for f in fields(cls)})


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port no one listens on, drawn below the kernel's ephemeral range. A port from ``bind(0)`` comes
    from that range, so an outgoing connection can take it before the program it was meant for binds it, and two
    calls can return the same port once the first is released; CI lost a whole stack to such a clash."""
    ceiling = _ephemeral_floor()
    while True:
        port = random.randrange(max(1024, ceiling - 12000), ceiling)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def build_programs() -> Path:
    """The cache's bin directory, after building what is missing (a no-op when everything is cached)."""
    done = subprocess.run(["bash", str(ROOT / "scripts" / "build-programs.sh")], stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise RuntimeError("scripts/build-programs.sh failed; its output above says where")
    return Path(done.stdout.strip().splitlines()[-1])


def prometheus_config(
    addresses: Mapping[str, str | Sequence[str] | None], rule_files: str, scrape_interval: str | None = None
) -> dict[str, Any]:
    """monitoring/prometheus/prometheus.yml with its compose addresses mapped, and rule files by absolute path.

    A static target maps to one address; a DNS-discovered name (``proxy:11434``) to the addresses it would resolve
    to (the replicas), which become the job's static targets. A job whose target maps to None is left out: the
    no-Docker stack runs no mistral.rs server unless given one."""
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["rule_files"] = [rule_files]
    if scrape_interval:
        config["global"] = {**config["global"], "scrape_interval": scrape_interval,
                            "evaluation_interval": scrape_interval}  # fmt: skip
        for job in config["scrape_configs"]:
            job.pop("scrape_timeout", None)  # may not exceed the interval
    for manager in config["alerting"]["alertmanagers"]:
        for static in manager["static_configs"]:
            static["targets"] = [addresses[target] for target in static["targets"]]
    jobs = []
    for job in config["scrape_configs"]:
        if "dns_sd_configs" in job:
            discovered = job.pop("dns_sd_configs")
            found = [_listed(addresses[f"{name}:{d['port']}"]) for d in discovered for name in d["names"]]
            if targets := [address for each in found for address in each]:
                jobs.append({**job, "static_configs": [{"targets": targets}]})
            continue
        targets = [addresses[t] for static in job["static_configs"] for t in static["targets"]]
        if all(targets):
            for static in job["static_configs"]:
                static["targets"] = [addresses[target] for target in static["targets"]]
            jobs.append(job)
    config["scrape_configs"] = jobs
    return config


def _listed(found: str | Sequence[str] | None) -> list[str]:
    return [found] if isinstance(found, str) else list(found or ())


@dataclass
class Program:
    name: str
    command: list[str]
    env: dict[str, str]
    ready: str  # a URL that answers 200 once the program serves (redis://: one that answers PING)
    ready_timeout: float = READY_TIMEOUT
    process: subprocess.Popen[bytes] | None = None


@dataclass
class Stack:
    """Start with ``start()``, stop with ``stop()``; ``restart(name)`` and ``stop_one(name)`` for one program.

    ``scrape_interval``, ``rules`` and ``proxy_env`` exist for the tests: faster scrapes and pushes, a copy of
    the rules with shorter ``for:`` durations, and the emulator as upstream. With ``replicas`` above 1, that many
    proxies (``proxy-1`` …) run behind HAProxy (``balancer``, at the proxy's port) with the repository's
    monitoring/haproxy/haproxy.cfg, as compose's scale-out profile; Prometheus then sees them through the Collector.
    """

    workdir: Path
    bin: Path
    ports: Ports = field(default_factory=Ports)
    mistral_url: str | None = None
    proxy_env: dict[str, str] = field(default_factory=dict)
    scrape_interval: str | None = None
    rules: Path = RULES
    replicas: int = 1
    programs: dict[str, Program] = field(default_factory=dict)
    replica_ports: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.replicas > 1:
            self.replica_ports = {f"proxy-{n}": free_port() for n in range(1, self.replicas + 1)}
        for program in (self._jaeger(), self._collector(), self._alertmanager(), self._prometheus()):
            self.programs[program.name] = program
        if self.replicas == 1:
            self.programs["proxy"] = self._proxy("proxy", self.ports.proxy)
            return
        store = self._quota_store()
        self.programs[store.name] = store
        for name, port in self.replica_ports.items():
            self.programs[name] = self._proxy(name, port, {"QUOTA_STORE_URL": store.ready})
        self.programs["balancer"] = self._balancer()

    def url(self, name: str) -> str:
        port = {"proxy": self.ports.proxy, "prometheus": self.ports.prometheus, "jaeger": self.ports.jaeger_query,
                "alertmanager": self.ports.alertmanager, "collector": self.ports.collector_health,
                "collector-metrics": self.ports.collector_prometheus}[name]  # fmt: skip
        return f"http://127.0.0.1:{port}"

    def _jaeger(self) -> Program:
        p = self.ports
        env = {"JAEGER_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{p.jaeger_otlp_grpc}",
               "JAEGER_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{p.jaeger_otlp_http}",
               "JAEGER_QUERY_HTTP_ENDPOINT": f"127.0.0.1:{p.jaeger_query}",
               "JAEGER_QUERY_GRPC_ENDPOINT": f"127.0.0.1:{p.jaeger_query_grpc}",
               "JAEGER_HEALTH_ENDPOINT": f"127.0.0.1:{p.jaeger_health}",
               "JAEGER_TELEMETRY_HOST": "127.0.0.1", "JAEGER_TELEMETRY_PORT": str(p.jaeger_telemetry)}  # fmt: skip
        command = [str(self.bin / "jaeger"), "--config", f"file:{ROOT / 'monitoring' / 'jaeger' / 'config.yaml'}"]
        return Program("jaeger", command, env, f"http://127.0.0.1:{p.jaeger_query}/api/services")

    def _collector(self) -> Program:
        p = self.ports
        env = {"COLLECTOR_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{p.otlp_grpc}",
               "COLLECTOR_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{p.otlp_http}",
               "COLLECTOR_PROMETHEUS_ENDPOINT": f"127.0.0.1:{p.collector_prometheus}",
               "COLLECTOR_HEALTH_ENDPOINT": f"127.0.0.1:{p.collector_health}",
               "COLLECTOR_TELEMETRY_HOST": "127.0.0.1", "COLLECTOR_TELEMETRY_PORT": str(p.collector_telemetry),
               "JAEGER_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{p.jaeger_otlp_grpc}"}  # fmt: skip
        command = [str(self.bin / "otelcol-mop"), "--config", f"file:{ROOT / 'collector-config.yaml'}"]
        return Program("otel-collector", command, env, f"http://127.0.0.1:{p.collector_health}/")

    def _alertmanager(self) -> Program:
        p = self.ports
        command = [str(self.bin / "alertmanager"),
                   f"--config.file={ROOT / 'monitoring' / 'alertmanager' / 'alertmanager.yml'}",
                   f"--storage.path={self.workdir / 'alertmanager'}",
                   f"--web.listen-address=127.0.0.1:{p.alertmanager}", "--cluster.listen-address="]  # fmt: skip
        return Program("alertmanager", command, {}, f"http://127.0.0.1:{p.alertmanager}/-/ready")

    def _prometheus(self) -> Program:
        p = self.ports
        upstream = self.mistral_url.split("://", 1)[-1].rstrip("/") if self.mistral_url else None
        # Every replica is a target of its own, as compose's DNS discovery of "proxy" gives (not the balancer).
        proxies = [f"127.0.0.1:{port}" for port in self.replica_ports.values()] or [f"127.0.0.1:{p.proxy}"]
        addresses = {"proxy:11434": proxies,
                     "otel-collector:8889": f"127.0.0.1:{p.collector_prometheus}",
                     "alertmanager:9093": f"127.0.0.1:{p.alertmanager}", "mistralrs:8080": upstream}  # fmt: skip
        config = prometheus_config(addresses, str(self.rules / "*.yml"), self.scrape_interval)
        path = self.workdir / "prometheus.yml"
        path.write_text("# Generated by scripts/stack.py from monitoring/prometheus/prometheus.yml\n"
                        + yaml.safe_dump(config, sort_keys=False))  # fmt: skip
        # compose.yaml's flags, but for the paths and the address.
        command = [str(self.bin / "prometheus"), f"--config.file={path}",
                   f"--storage.tsdb.path={self.workdir / 'prometheus'}", "--storage.tsdb.retention.time=15d",
                   "--enable-feature=exemplar-storage", "--web.enable-lifecycle",
                   f"--web.listen-address=127.0.0.1:{p.prometheus}"]  # fmt: skip
        return Program("prometheus", command, {}, f"http://127.0.0.1:{p.prometheus}/-/ready")

    def _quota_store(self) -> Program:
        """compose's quota-store: the Redis the replicas share their tenants' limits in (Debian's redis-server)."""
        port = free_port()
        redis = shutil.which("redis-server") or "/usr/bin/redis-server"
        command = [redis, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        return Program("quota-store", command, {}, f"redis://127.0.0.1:{port}/0")

    def _proxy(self, name: str, port: int, extra: dict[str, str] | None = None) -> Program:
        p = self.ports
        # compose.yaml's proxy environment, on local addresses.
        env = {"BIND_ADDRESS": f"127.0.0.1:{port}", "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{p.otlp_grpc}",
               "OTEL_SERVICE_NAME": "mistral-ollama-proxy", "OTEL_METRIC_EXPORT_INTERVAL": "15000",
               "OTEL_LOGS_EXPORTER": "otlp"}  # fmt: skip
        if self.mistral_url:
            env["MISTRAL_URL"] = self.mistral_url
        env.update(extra or {})
        env.update(self.proxy_env)
        command = [sys.executable, "-m", "app.commands", "serve"]
        return Program(name, command, env, f"http://127.0.0.1:{port}/", PROXY_READY_TIMEOUT)

    def _balancer(self) -> Program:
        lines = HAPROXY_CONFIG.read_text().replace("bind :11434", f"bind 127.0.0.1:{self.ports.proxy}").splitlines()
        servers = [n for n, line in enumerate(lines) if line.strip().startswith("server proxy-")]
        indent = lines[servers[0]][: len(lines[servers[0]]) - len(lines[servers[0]].lstrip())]
        listed = [f"{indent}server {name} 127.0.0.1:{port}" for name, port in self.replica_ports.items()]
        text = "\n".join(lines[: servers[0]] + listed + lines[servers[-1] + 1 :])
        path = self.workdir / "haproxy.cfg"
        path.write_text(f"# Generated by scripts/stack.py from {HAPROXY_CONFIG.relative_to(ROOT)}\n{text}\n")
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        return Program("balancer", [haproxy, "-db", "-f", str(path)], {}, f"{self.url('proxy')}/")

    def start(self, say: Callable[[str], None] = lambda _: None) -> None:
        try:
            for name in self.programs:
                say(f"starting {name} …")
                self.start_one(name)
        except BaseException:
            self.stop()
            raise

    def start_one(self, name: str) -> None:
        program = self.programs[name]
        log = (self.workdir / f"{name}.log").open("ab")
        program.process = subprocess.Popen(
            program.command, env={**os.environ, **program.env}, stdout=log, stderr=subprocess.STDOUT,
            cwd=ROOT, start_new_session=True,  # Ctrl-C reaches the stack, which stops the programs in order
        )  # fmt: skip
        log.close()
        _wait_ready(program, self.workdir / f"{name}.log")

    def stop_one(self, name: str) -> None:
        process = self.programs[name].process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self, name: str) -> None:
        self.stop_one(name)
        self.start_one(name)

    def stop(self) -> None:
        for name in reversed(self.programs):
            self.stop_one(name)

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")


def _wait_ready(program: Program, log: Path) -> None:
    deadline = time.monotonic() + program.ready_timeout
    assert program.process is not None
    with httpx.Client(timeout=2) as http:
        while True:
            if program.process.poll() is not None:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
                raise RuntimeError(f"{program.name} exited with {program.process.returncode}:\n{tail}")
            if program.ready.startswith("redis://"):
                if _pongs(program.ready):
                    return
            else:
                try:
                    if http.get(program.ready).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{program.name} not ready at {program.ready} after {program.ready_timeout:.0f} s")
            time.sleep(0.1)


def _pongs(url: str) -> bool:
    """Whether the Redis at ``url`` answers PING."""
    parsed = httpx.URL(url)
    try:
        with socket.create_connection((parsed.host, parsed.port or 6379), timeout=2) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _announce(stack: Stack) -> None:
    print(f"""
Ollama API (the proxy)   {stack.url("proxy")}          metrics: {stack.url("proxy")}/metrics
Prometheus               {stack.url("prometheus")}          (API only: the module build has no UI)
Alertmanager             {stack.url("alertmanager")}
Jaeger query API         {stack.url("jaeger")}/api/traces?service=mistral-ollama-proxy   (no UI in the module build)
Collector                OTLP gRPC 127.0.0.1:{stack.ports.otlp_grpc}, HTTP 127.0.0.1:{stack.ports.otlp_http}; \
Prometheus exporter {stack.url("collector-metrics")}/metrics; health {stack.url("collector")}/
Logs of every program    {stack.workdir}/*.log   (the proxy's access log reaches the Collector's output by OTLP)
Check the whole chain:   mistral-ollama-proxy check --proxy {stack.url("proxy")} \
--prometheus {stack.url("prometheus")} --jaeger {stack.url("jaeger")} --collector {stack.url("collector")}
Ctrl-C stops everything.""", flush=True)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/stack.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--mistral-url", help="a mistral.rs server; unset: mistral.rs runs in the proxy")
    parser.add_argument("--model", help="the embedded engine's model (MODEL)")
    parser.add_argument("--free-ports", action="store_true", help="ephemeral ports instead of compose's")
    parser.add_argument("--replicas", type=int, default=1, help="proxies behind HAProxy (compose's scale-out)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "build" / "stack", help="data and logs")
    args = parser.parse_args(argv)
    bin_dir = build_programs()
    proxy_env = {"MODEL": args.model} if args.model else {}
    ports = Ports.free() if args.free_ports else Ports()
    stack = Stack(args.workdir, bin_dir, ports, args.mistral_url, proxy_env, replicas=args.replicas)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    # Started in the background by a shell without job control, a process inherits SIGINT ignored: Ctrl-C must
    # still stop the stack (CI run that way hung until killed, leaving every program running).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        stack.start(say=lambda line: print(line, flush=True))
        _announce(stack)
        while all(p.process is not None and p.process.poll() is None for p in stack.programs.values()):
            time.sleep(0.5)
        dead = [name for name, p in stack.programs.items() if p.process is not None and p.process.poll() is not None]
        print(f"stopped: {', '.join(dead)} exited (see {args.workdir}/<name>.log)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except RuntimeError as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 1
    finally:
        print("stopping …", flush=True)
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
