"""A fleet on one machine: HAProxy in front of `voxhost serve` instances, each a
host of its own in a network namespace (its own address on a veth link), all
sharing one voices and phrase-cache directory as EFS does.

HAProxy is set up the way the ALB is (deploy/aws): health checks on /ready,
the ALB's idle timeout on every side (300 s), WebSockets through the same
listener; and it balances by load, which the ALB cannot: `leastconn` (a live
session is an open connection for its whole life) with each server's agent
check saying `0%` while it is full or leaving (api/lb_agent.py). The health
check polls every second (the ALB's 15 s would not fit a test).

Everything is named with one prefix, so the harness removes what a crashed run
left before it starts, and everything it made when it ends, pass or fail.
Used by tests/fleet/test_fleet.py and bench/fleet.py (the fleet table).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

NS_PREFIX = "vxfleet-"
LINK_PREFIX = "vxf"  # vxf<i>h on the host, vxf<i>n in the namespace
SERVER_PORT = 8000
AGENT_PORT = 8001
IDLE_TIMEOUT_S = 300  # deploy/aws: alb_idle_timeout_seconds
RUN_DIR = Path(tempfile.gettempdir()) / "voxhost-fleet"
SRC = Path(__file__).resolve().parents[2] / "src"


def missing_capability() -> str | None:
    """Why this machine cannot run the fleet, or None. Names what is missing."""
    if os.geteuid() != 0:
        return ("needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) to create network namespaces and veth links; "
                "CI runs the suite as root")
    for tool, package in (("ip", "iproute2"), ("haproxy", "haproxy")):
        if shutil.which(tool) is None:
            return f"needs `{tool}` (Debian package {package}; scripts/system-deps.sh installs it)"
    probe = NS_PREFIX + "probe"
    _ip("netns", "del", probe, check=False)
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace (`ip netns add`): {made.stderr.strip()}"
    veth = _ip("link", "add", LINK_PREFIX + "ph", "type", "veth", "peer", "name", LINK_PREFIX + "pn", check=False)
    _ip("link", "del", LINK_PREFIX + "ph", check=False)
    _ip("netns", "del", probe, check=False)
    if veth.returncode != 0:
        return f"cannot create a veth link (`ip link add ... type veth`): {veth.stderr.strip()}"
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def remove_leftovers() -> None:
    """Everything a run of this harness may have left: its namespaces (and every process
    in them), its links, its HAProxy. Only what carries the prefix or sits in RUN_DIR."""
    listed = _ip("netns", "list", check=False).stdout.split("\n")
    for name in (line.split()[0] for line in listed if line.strip()):
        if name.startswith(NS_PREFIX):
            _kill_namespace(name)
    links = _ip("-o", "link", "show", check=False).stdout.splitlines()
    for line in links:
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        if name.startswith(LINK_PREFIX) and name[len(LINK_PREFIX):-1].isdigit():
            _ip("link", "del", name, check=False)
    pidfile = RUN_DIR / "haproxy.pid"
    if pidfile.exists():
        with contextlib.suppress(ValueError, OSError):
            pid = int(pidfile.read_text().split()[0])
            if str(RUN_DIR) in Path(f"/proc/{pid}/cmdline").read_text():
                os.kill(pid, signal.SIGKILL)
        pidfile.unlink(missing_ok=True)


def _kill_namespace(name: str) -> None:
    pids = _ip("netns", "pids", name, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pids and time.monotonic() < deadline and _ip("netns", "pids", name, check=False).stdout.split():
        time.sleep(0.05)
    _ip("netns", "del", name, check=False)


class Instance:
    """One task: a namespace with its own address, and the `voxhost serve` in it."""

    def __init__(self, index: int, env: dict[str, str], log_dir: Path):
        self.index = index
        self.name = f"s{index}"
        self.ns = f"{NS_PREFIX}{index}"
        self.host_if, self.ns_if = f"{LINK_PREFIX}{index}h", f"{LINK_PREFIX}{index}n"
        self.address = f"10.77.{index}.2"
        self.env = env
        self.log_dir = log_dir
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://{self.address}:{SERVER_PORT}"

    def create_network(self) -> None:
        _ip("netns", "add", self.ns)
        _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        _ip("link", "set", self.ns_if, "netns", self.ns)
        _ip("addr", "add", f"10.77.{self.index}.1/24", "dev", self.host_if)
        _ip("link", "set", self.host_if, "up")
        for args in (("addr", "add", f"{self.address}/24", "dev", self.ns_if), ("link", "set", self.ns_if, "up"),
                     ("link", "set", "lo", "up")):
            _ip("netns", "exec", self.ns, "ip", *args)

    def start(self) -> None:
        self.starts += 1
        log = (self.log_dir / f"{self.name}-{self.starts}.log").open("w")
        env = {**os.environ, "PYTHONPATH": str(SRC), **self.env}
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, sys.executable, "-m", "voxhost.cli.main", "serve",
             "--host", "0.0.0.0", "--port", str(SERVER_PORT)],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def ready(self) -> bool:
        try:
            return httpx.get(self.url + "/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout) if self.proc is not None else None
        except subprocess.TimeoutExpired:
            return None

    def link(self, up: bool) -> None:
        """The instance's own link (its side of the veth): down, it vanishes from the
        network without a reset or an error; peers see only silence."""
        _ip("netns", "exec", self.ns, "ip", "link", "set", self.ns_if, "up" if up else "down")

    def log_tail(self, lines: int = 30) -> str:
        path = self.log_dir / f"{self.name}-{self.starts}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def destroy(self) -> None:
        self.kill()
        _kill_namespace(self.ns)
        _ip("link", "del", self.host_if, check=False)


class Balancer:
    """HAProxy in the host's namespace, listening on 127.0.0.1, its admin socket in RUN_DIR."""

    def __init__(self, servers: list[Instance], registered: int, port: int):
        self.port = port
        self.servers = servers
        self.socket = RUN_DIR / "haproxy.sock"
        self.config = RUN_DIR / "haproxy.cfg"
        lines = []
        for i, server in enumerate(servers):
            state = "" if i < registered else " disabled"  # later: an instance added mid-load
            lines.append(f"    server {server.name} {server.address}:{SERVER_PORT}{state}")
        self.config.write_text(CONFIG.format(socket=self.socket, pidfile=RUN_DIR / "haproxy.pid", port=port,
                                             idle=IDLE_TIMEOUT_S, agent=AGENT_PORT, servers="\n".join(lines)))
        check = subprocess.run(["haproxy", "-c", "-q", "-f", str(self.config)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy rejected its configuration: {check.stderr or check.stdout}")
        self.log = (RUN_DIR / "haproxy.log").open("w")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", str(self.config)], stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def stats(self) -> dict[str, dict[str, str]]:
        """Per server: status (UP, DOWN, MAINT, ...), weight, scur (open connections)."""
        text = self.command("show stat").lstrip("# ")
        rows = csv.DictReader(io.StringIO(text))
        return {r["svname"]: r for r in rows if r.get("pxname") == "tasks" and r["svname"] not in ("BACKEND",)}

    def up(self) -> list[str]:
        try:
            return [name for name, row in self.stats().items() if row["status"].startswith("UP")]
        except OSError:  # still starting: no admin socket yet
            return []

    def disable(self, name: str) -> None:
        self.command(f"disable server tasks/{name}")

    def enable(self, name: str) -> None:
        self.command(f"enable server tasks/{name}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


CONFIG = """\
# Like the ALB in deploy/aws, plus balancing by load (see tests/fleet/harness.py).
global
    maxconn 4096
    pidfile {pidfile}
    stats socket {socket} mode 600 level admin

defaults
    mode http
    timeout connect 3s
    timeout client {idle}s
    timeout server {idle}s
    timeout tunnel {idle}s
    timeout http-keep-alive {idle}s
    timeout http-request 60s
    timeout queue 10s
    # A connection that fails to open is tried again, on another server: nothing was sent.
    retries 2
    option redispatch

frontend players
    bind 127.0.0.1:{port}
    default_backend tasks

backend tasks
    balance leastconn
    # Test hook, no ALB equivalent: a request naming a server goes to it while it is up (a drill
    # puts a request in flight on the instance it is about to lose). Ignored once it is down.
    use-server %[req.hdr(x-fleet-server)] if {{ req.hdr(x-fleet-server) -m found }}
    option httpchk
    http-check send meth GET uri /ready ver HTTP/1.1 hdr Host voxhost
    http-check expect status 200
    default-server check inter 1s fall 2 rise 2 agent-check agent-port {agent} agent-inter 500ms
{servers}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def instance_env(shared: Path) -> dict[str, str]:
    """A light instance: one small STT model, one TTS engine, no partials; the fleet's shared
    voices and phrase cache; set for a balancer whose idle timeout is 300 s."""
    return {
        "VOXHOST_STT_MODELS": "whisper-tiny.en",
        "VOXHOST_TTS_ENGINES": "hibari",
        "VOXHOST_VOICES_DIR": str(shared / "voices"),
        "VOXHOST_TTS_CACHE_PATH": str(shared / "tts-cache"),
        "VOXHOST_KEEPALIVE_TIMEOUT_S": str(IDLE_TIMEOUT_S + 5),
        "VOXHOST_LB_AGENT_PORT": str(AGENT_PORT),
        "VOXHOST_DRAIN_GRACE_S": "2",
        "VOXHOST_DRAIN_TIMEOUT_S": "60",
        "VOXHOST_REALTIME_PARTIAL_INTERVAL_MS": "0",
        # A loaded 2-core CI box: a replay's finals may wait; none is shed as late.
        "VOXHOST_REALTIME_MAX_FINAL_WAIT_SECONDS": "60",
        "VOXHOST_REALTIME_MAX_PENDING_TURNS": "8",
        # Losses of instances are under test, not overload: no 429 for a queue that is merely
        # slow on a shared 2-core box (admission by expected wait, where the build has it).
        "VOXHOST_STT_WAIT_BUDGET_S": "0",
        "VOXHOST_TTS_WAIT_BUDGET_S": "0",
        "VOXHOST_LOG_LEVEL": "warning",
    }


class Fleet(contextlib.AbstractContextManager):
    """`size` instances started at once (plus `spare` namespaces whose servers are
    registered but disabled, for instances added later) behind one HAProxy."""

    def __init__(self, size: int = 3, spare: int = 1, start_timeout: float = 240.0):
        self.size, self.spare, self.start_timeout = size, spare, start_timeout
        self.instances: list[Instance] = []
        self.balancer: Balancer | None = None

    def __enter__(self) -> Fleet:
        remove_leftovers()
        if RUN_DIR.exists():
            shutil.rmtree(RUN_DIR, ignore_errors=True)
        RUN_DIR.mkdir(parents=True)
        shared = RUN_DIR / "efs"
        (shared / "voices").mkdir(parents=True)
        (shared / "tts-cache").mkdir()
        try:
            env = instance_env(shared)
            self.instances = [Instance(i + 1, env, RUN_DIR) for i in range(self.size + self.spare)]
            for instance in self.instances:
                instance.create_network()
            for instance in self.instances[:self.size]:
                instance.start()
            self.balancer = Balancer(self.instances, self.size, free_port())
            self.wait_up([i.name for i in self.instances[:self.size]], self.start_timeout)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def wait_up(self, names: list[str], timeout: float) -> float:
        """Until the balancer has these servers UP; returns the seconds it took."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if set(names) <= set(self.balancer.up()):
                return time.monotonic() - start
            for instance in self.instances:
                if instance.proc is not None and instance.proc.poll() is not None and instance.name in names:
                    raise RuntimeError(f"{instance.name} exited ({instance.proc.returncode}):\n{instance.log_tail()}")
            time.sleep(0.1)
        raise RuntimeError(f"servers {names} not UP after {timeout:.0f}s: {self.balancer.stats()}")

    def __exit__(self, *exc) -> None:
        if self.balancer is not None:
            self.balancer.stop()
        for instance in self.instances:
            instance.destroy()
        remove_leftovers()
