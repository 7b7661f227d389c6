"""A real single-node Apache Kafka broker (KRaft) for the integration tests.

No Docker and no Kafka download site is needed: Maven fetches the broker's
jars from Maven Central (see ``tests/integration/kafka/pom.xml``) into a cache outside the
repository, and the broker runs as a plain ``java`` process on 127.0.0.1 with
its data and logs in a temporary directory.

    from tests.integration.kafka_server import KafkaServer

    with KafkaServer() as kafka:
        use(kafka.bootstrap_servers)  # "127.0.0.1:PORT", PLAINTEXT
        use(kafka.sasl_ssl_bootstrap_servers, kafka.ssl_cafile,  # SASL_SSL, SCRAM-SHA-512
            kafka.sasl_username, kafka.sasl_password)
        kafka.halt()    # the broker process stops (SIGTERM; or SIGKILL), its data stays
        kafka.resume()  # and starts again on the same ports with the same data

By hand (also the set-up step of the Makefile):

    python -m tests.integration.kafka_server install   # fetch the jars, print the libs dir
    python -m tests.integration.kafka_server run       # start a broker until Ctrl-C

The SASL_SSL listener's certificate is signed by a CA made for the broker
(``make_ca``, with the ``openssl`` command), and its one SCRAM-SHA-512 user
is created when the storage is formatted.

Needs Java 17+, Maven and openssl on PATH (``JAVA_HOME`` is honoured for java).  The
cache root is ``$LEADSCORE_KAFKA_CACHE`` if set, else
``${XDG_CACHE_HOME:-~/.cache}/leadscore``; the jars go to
``<root>/kafka-<version>/libs``.

The module uses the standard library only, so it can start a broker for any
client; the readiness check speaks the Kafka wire protocol itself.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import ctypes
import hashlib
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

# The Kafka release to test against. Kafka 4 removed old protocol versions
# (KIP-896), among them CreateTopics v1, which faust-streaming 0.15.3 hard-codes
# when aiokafka < 0.13: keep aiokafka >= 0.13 (pinned: 0.14.0) or fall back to
# "3.9.2". The jars are cached per version; the storage tool, configuration and
# logging below work for 3.9 and 4.x.
KAFKA_VERSION = "4.4.0"

POM = Path(__file__).resolve().parent / "kafka" / "pom.xml"
DIR_PREFIX = "leadscore-kafka-"  # the brokers' temporary directories

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
# A modest heap. (Start-up flags such as -XX:TieredStopAtLevel=1 or the serial
# collector made no measurable difference: most of the ~2.5 s is Kafka's own.)
JAVA_OPTS = ("-Xms128m", "-Xmx512m", "-Djava.awt.headless=true")

SASL_MECHANISM = "SCRAM-SHA-512"
SASL_USERNAME = "leadscore-test"
CERT_DAYS = "7"


class KafkaServerError(RuntimeError):
    """The broker could not be installed, started or reached."""


# --------------------------------------------------------------------------
# install


def cache_root() -> Path:
    """Where the jars are cached: ``$LEADSCORE_KAFKA_CACHE`` or ~/.cache/leadscore."""
    if env := os.environ.get("LEADSCORE_KAFKA_CACHE"):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "leadscore"


def _which(tool: str) -> str:
    if tool == "java" and (home := os.environ.get("JAVA_HOME")):
        candidate = Path(home) / "bin" / "java"
        if candidate.is_file():
            return str(candidate)
    path = shutil.which(tool)
    if path is None:
        raise KafkaServerError(
            f"`{tool}` not found on PATH: the Kafka test broker needs Java 17+, Maven and "
            "openssl (Debian: apt-get install openjdk-17-jre-headless maven openssl)"
        )
    return path


def _stamp() -> str:
    """Identifies what a libs dir was built from: the Kafka version and the pom."""
    return f"{KAFKA_VERSION} {hashlib.sha256(POM.read_bytes()).hexdigest()}\n"


def install(cache_dir: Path | None = None) -> Path:
    """Fetch the broker's jars with Maven (once) and return the libs directory.

    Idempotent and atomic: the jars are copied into a temporary directory next
    to the final one, which is renamed into place only when Maven succeeded,
    so an interrupted run never leaves a half-filled cache behind.
    """
    version_dir = (cache_dir or cache_root()) / f"kafka-{KAFKA_VERSION}"
    libs = version_dir / "libs"
    stamp_file = libs / ".installed"
    if stamp_file.is_file() and stamp_file.read_text() == _stamp():
        return libs

    mvn = _which("mvn")
    _which("java")
    version_dir.mkdir(parents=True, exist_ok=True)
    for leftover in version_dir.glob("libs.*-*"):  # from a killed install, an hour ago or more
        with contextlib.suppress(OSError):
            if time.time() - leftover.stat().st_mtime > 3600:
                shutil.rmtree(leftover, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix="libs.tmp-", dir=version_dir))
    try:
        cmd = [
            mvn, "-B", "-q", "-f", str(POM), "dependency:copy-dependencies",
            f"-DoutputDirectory={tmp}", "-DincludeScope=runtime",
            f"-Dkafka.version={KAFKA_VERSION}",
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not any(tmp.glob(f"kafka_2.13-{KAFKA_VERSION}.jar")):
            raise KafkaServerError(
                f"Maven could not fetch Kafka {KAFKA_VERSION} (exit {done.returncode}):\n"
                f"{' '.join(cmd)}\n{_tail(done.stdout + done.stderr)}"
            )
        (tmp / ".installed").write_text(_stamp())
        if libs.exists():  # outdated (other pom) or half-removed: replace it
            stale = Path(tempfile.mkdtemp(prefix="libs.old-", dir=version_dir))
            with contextlib.suppress(FileNotFoundError):
                libs.rename(stale / "libs")
            shutil.rmtree(stale, ignore_errors=True)
        try:
            tmp.rename(libs)
        except OSError:  # a concurrent install won the race: use its result
            if not (stamp_file.is_file() and stamp_file.read_text() == _stamp()):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return libs


# --------------------------------------------------------------------------
# the broker


# Every broker started and not yet stopped, stopped at interpreter exit as a
# safety net (for a KeyboardInterrupt between start() and the `with` block, or
# a test session that forgot to stop one).
_running: set[KafkaServer] = set()


@atexit.register
def _stop_all() -> None:
    for server in list(_running):
        server.stop()


class KafkaServer:
    """A single-node KRaft broker (broker and controller in one JVM) on 127.0.0.1.

    Two listeners: PLAINTEXT (``bootstrap_servers``) and SASL_SSL with
    SCRAM-SHA-512 (``sasl_ssl_bootstrap_servers``: one user, ``sasl_username``
    and ``sasl_password``, and a certificate for 127.0.0.1 signed by the CA in
    ``ssl_cafile``).

    ``start()`` returns once the broker answers a metadata request with itself
    in the broker list; ``stop()`` kills it and deletes its data.  Both are
    also run by the context manager.  ``halt()`` stops the broker's process
    but keeps its data and ports, ``resume()`` starts it again on them.
    ``extra_config`` adds or overrides server.properties entries.
    """

    def __init__(
        self,
        libs: Path | None = None,
        *,
        extra_config: dict[str, str] | None = None,
        start_timeout: float = START_TIMEOUT_S,
    ) -> None:
        self._libs = libs
        self._extra_config = dict(extra_config or {})
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: Path | None = None
        self._port: int | None = None
        self._sasl_ssl_port: int | None = None
        self._sasl_password = secrets.token_urlsafe(16)

    # -- public API --------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        if self._port is None:
            raise KafkaServerError("the Kafka broker is not running")
        return f"127.0.0.1:{self._port}"

    @property
    def sasl_ssl_bootstrap_servers(self) -> str:
        """The SASL_SSL listener, "127.0.0.1:PORT": SCRAM-SHA-512 over TLS."""
        if self._sasl_ssl_port is None:
            raise KafkaServerError("the Kafka broker is not running")
        return f"127.0.0.1:{self._sasl_ssl_port}"

    @property
    def ssl_cafile(self) -> Path:
        """The PEM certificate of the CA that signed the SASL_SSL listener's certificate."""
        return self._files / "tls" / "ca.pem"

    @property
    def sasl_mechanism(self) -> str:
        return SASL_MECHANISM

    @property
    def sasl_username(self) -> str:
        return SASL_USERNAME

    @property
    def sasl_password(self) -> str:
        return self._sasl_password

    @property
    def log_file(self) -> Path:
        """The broker's log4j log (exists while the broker runs)."""
        return self._files / "logs" / "server.log"

    @property
    def running(self) -> bool:
        """Whether the broker's process is up (started, and neither halted nor stopped)."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def _files(self) -> Path:
        if self._tmp is None:
            raise KafkaServerError("the Kafka broker is not running")
        return self._tmp

    def start(self) -> KafkaServer:
        if self._proc is not None:
            raise KafkaServerError("the Kafka broker is already running")
        libs = self._libs or install()
        java = _which("java")
        classpath = f"{libs}{os.sep}*"
        _remove_stale_dirs()
        _running.add(self)
        try:
            for attempt in range(3):  # a free port can be taken before the broker binds it
                self._tmp = Path(tempfile.mkdtemp(prefix=DIR_PREFIX))
                (self._tmp / "owner.pid").write_text(str(os.getpid()))
                port, sasl_ssl_port, controller_port = _free_ports(3)
                config = self._write_config(port, sasl_ssl_port, controller_port)
                self._format_storage(java, classpath, config)
                self._launch(java, classpath, config)
                self._port, self._sasl_ssl_port = port, sasl_ssl_port
                try:
                    self._wait_until_ready()
                    return self
                except KafkaServerError:
                    if attempt == 2 or "Address already in use" not in self._logs():
                        raise
                self.stop()
                _running.add(self)
            raise AssertionError("unreachable")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL) and delete its files."""
        self.halt()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
        self._tmp = None
        self._port = self._sasl_ssl_port = None
        _running.discard(self)

    def halt(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop the broker's process, with `sig` (SIGTERM: a controlled shutdown, SIGKILL
        after STOP_TIMEOUT_S; SIGKILL: a crash); its data, ports and users stay for
        ``resume()``. Returns once the process is gone."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()

    def resume(self) -> KafkaServer:
        """Start the halted broker again: the same ports, log dirs and users, no reformat.
        Returns once it answers, as ``start()`` does."""
        if self._tmp is None or self._port is None:
            raise KafkaServerError("the Kafka broker was never started, or is stopped")
        if self.running:
            raise KafkaServerError("the Kafka broker is already running")
        libs = self._libs or install()
        self._launch(_which("java"), f"{libs}{os.sep}*", self._tmp / "server.properties")
        self._wait_until_ready()
        return self

    def __enter__(self) -> KafkaServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- steps -------------------------------------------------------------

    def _write_config(self, port: int, sasl_ssl_port: int, controller_port: int) -> Path:
        assert self._tmp is not None
        (self._tmp / "logs").mkdir()
        keystore, keystore_password = _broker_keystore(self._tmp / "tls")
        sasl_ssl = "listener.name.sasl_ssl."
        config = {
            # One JVM is the whole cluster: broker and (static, single-voter) controller.
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{port},SASL_SSL://127.0.0.1:{sasl_ssl_port},"
            f"CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port},"
            f"SASL_SSL://127.0.0.1:{sasl_ssl_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": (
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL"
            ),
            # SASL_SSL: SCRAM-SHA-512 users (made by the storage tool) over TLS.
            f"{sasl_ssl}sasl.enabled.mechanisms": SASL_MECHANISM,
            f"{sasl_ssl}{SASL_MECHANISM.lower()}.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            f"{sasl_ssl}ssl.keystore.type": "PKCS12",
            f"{sasl_ssl}ssl.keystore.location": str(keystore),
            f"{sasl_ssl}ssl.keystore.password": keystore_password,
            f"{sasl_ssl}ssl.key.password": keystore_password,
            "log.dirs": str(self._tmp / "data"),
            # A single node: every internal topic has one replica.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",  # Kafka 4.x
            "share.coordinator.state.topic.min.isr": "1",  # Kafka 4.x
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            # Fast first group / transaction: few internal partitions, no rebalance delay.
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.num.partitions": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "num.partitions": "1",
            # Small and short-lived data.
            "log.segment.bytes": str(16 * 1024 * 1024),
            "log.index.size.max.bytes": str(1024 * 1024),
            "log.retention.hours": "1",
            "log.retention.check.interval.ms": "60000",
            "offsets.retention.minutes": "60",
            # Modest threads for a small machine.
            "num.network.threads": "2",
            "num.io.threads": "2",
            "background.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
            **self._extra_config,
        }
        path = self._tmp / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in config.items()))
        # Everything at INFO into logs/server.log (-Dlog4j2.configurationFile).
        (self._tmp / "log4j2.properties").write_text(
            "status = warn\n"
            "appender.file.type = File\n"
            "appender.file.name = FILE\n"
            f"appender.file.fileName = {self._tmp / 'logs' / 'server.log'}\n"
            "appender.file.layout.type = PatternLayout\n"
            "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = INFO\n"
            "rootLogger.appenderRef.file.ref = FILE\n"
        )
        return path

    def _java_cmd(self, java: str, classpath: str, main: str, *args: str) -> list[str]:
        assert self._tmp is not None
        return [
            java, *JAVA_OPTS,
            f"-Dlog4j2.configurationFile={self._tmp / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self._tmp / 'logs'}",
            "-cp", classpath, main, *args,
        ]  # fmt: skip

    def _format_storage(self, java: str, classpath: str, config: Path) -> None:
        user = f"{SASL_MECHANISM}=[name={SASL_USERNAME},password={self._sasl_password}]"
        cmd = self._java_cmd(
            java, classpath, "kafka.tools.StorageTool",
            "format", "--config", str(config), "--cluster-id", _cluster_id(),
            "--add-scram", user,
        )  # fmt: skip
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=self._start_timeout,
                check=False, start_new_session=True, preexec_fn=_DIE_WITH_PARENT,
            )  # fmt: skip
        except subprocess.TimeoutExpired as e:
            raise KafkaServerError("the Kafka storage tool timed out") from e
        if done.returncode != 0:
            raise KafkaServerError(
                f"formatting the Kafka storage failed (exit {done.returncode}):\n"
                f"{_tail(done.stdout + done.stderr)}"
            )

    def _launch(self, java: str, classpath: str, config: Path) -> None:
        assert self._tmp is not None
        cmd = self._java_cmd(java, classpath, "kafka.Kafka", str(config))
        with open(self._tmp / "logs" / "stdout.log", "ab") as out:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self._tmp, start_new_session=True, preexec_fn=_DIE_WITH_PARENT,
            )  # fmt: skip

    def _wait_until_ready(self) -> None:
        assert self._proc is not None and self._port is not None
        assert self._sasl_ssl_port is not None
        deadline = time.monotonic() + self._start_timeout
        problem = "no answer"
        while time.monotonic() < deadline:
            if (code := self._proc.poll()) is not None:
                raise KafkaServerError(f"the Kafka broker exited with {code}:\n{self._logs()}")
            try:
                if _metadata_brokers(self._port) > 0:
                    socket.create_connection(("127.0.0.1", self._sasl_ssl_port), 2).close()
                    return
                problem = "metadata lists no broker yet"
            except OSError as e:
                problem = f"{type(e).__name__}: {e}"
            time.sleep(0.1)
        raise KafkaServerError(
            f"the Kafka broker did not answer within {self._start_timeout:.0f} s "
            f"({problem}):\n{self._logs()}"
        )

    def _logs(self) -> str:
        if self._tmp is None:
            return ""
        parts = []
        for name in ("stdout.log", "server.log"):
            with contextlib.suppress(OSError):
                text = (self._tmp / "logs" / name).read_text(errors="replace")
                if text.strip():
                    parts.append(f"--- {name} (tail) ---\n{_tail(text)}")
        return "\n".join(parts)


# --------------------------------------------------------------------------
# helpers


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _free_ports(n: int) -> list[int]:
    """n distinct ports that are free on 127.0.0.1 right now."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def make_ca(directory: Path, name: str = "leadscore test CA") -> tuple[Path, Path]:
    """A new self-signed CA in `directory`: its certificate (PEM) and its key."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "ca.pem", directory / "ca.key"
    _openssl(
        "req", "-x509", *_NEW_KEY, "-nodes", "-days", CERT_DAYS, "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", str(key), "-out", str(cert),
    )  # fmt: skip
    return cert, key


def _broker_keystore(directory: Path) -> tuple[Path, str]:
    """A CA (``ca.pem``) and a PKCS#12 keystore with the broker's certificate for
    127.0.0.1 and localhost, signed by it; returns the keystore and its password."""
    ca_cert, ca_key = make_ca(directory)
    key, request = directory / "broker.key", directory / "broker.csr"
    cert, extensions = directory / "broker.pem", directory / "broker.ext"
    extensions.write_text(
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    _openssl("req", "-new", *_NEW_KEY, "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", str(key), "-out", str(request))  # fmt: skip
    _openssl(
        "x509", "-req", "-in", str(request), "-CA", str(ca_cert), "-CAkey", str(ca_key),
        "-set_serial", str(secrets.randbits(63)), "-days", CERT_DAYS,
        "-extfile", str(extensions), "-out", str(cert),
    )  # fmt: skip
    keystore, password = directory / "broker.p12", secrets.token_urlsafe(16)
    _openssl("pkcs12", "-export", "-in", str(cert), "-inkey", str(key), "-certfile",
             str(ca_cert), "-name", "broker", "-out", str(keystore),
             "-passout", f"pass:{password}")  # fmt: skip
    return keystore, password


_NEW_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")


def _openssl(*args: str) -> None:
    done = subprocess.run(
        [_which("openssl"), *args], capture_output=True, text=True, check=False, timeout=60
    )
    if done.returncode != 0:
        raise KafkaServerError(
            f"openssl {args[0]} failed (exit {done.returncode}):\n{_tail(done.stderr)}"
        )


def _cluster_id() -> str:
    """A random Kafka cluster id: a UUID in URL-safe base64, as `kafka-storage random-uuid`."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):  # Kafka avoids ids that look like options
            return cid


# How a JVM is kept from outliving this process. Each JVM gets its own session,
# so Ctrl-C reaches only Python, which then stops the broker in order. And on
# Linux the kernel SIGKILLs the JVM when the thread that started it ends, even
# when Python itself is killed and no clean-up can run (PR_SET_PDEATHSIG): so
# start a broker from the main thread, or from a thread that outlives it.
def _linux_die_with_parent() -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before fork, not in the child
    pr_set_pdeathsig = 1

    def die_with_parent() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL)

    return die_with_parent


_DIE_WITH_PARENT = _linux_die_with_parent()


def _remove_stale_dirs() -> None:
    """Delete broker directories whose Python process is gone.

    stop() deletes a broker's directory, but a test run killed by SIGKILL or
    SIGTERM cannot run it (its JVM is killed all the same, see above).
    """
    for owner_file in Path(tempfile.gettempdir()).glob(f"{DIR_PREFIX}*/owner.pid"):
        try:
            os.kill(int(owner_file.read_text()), 0)
        except ProcessLookupError:
            shutil.rmtree(owner_file.parent, ignore_errors=True)
        except (OSError, ValueError):  # not ours to judge (other user, unreadable, racing)
            pass


def _metadata_brokers(port: int, timeout: float = 2.0) -> int:
    """Send a Metadata v4 request (no topics) and return how many brokers it lists.

    Metadata v4 is understood by Kafka 1.0 up to 4.x. Request header v1:
    api_key, api_version, correlation_id, client_id; body: topics (empty
    array), allow_auto_topic_creation. Response: correlation_id,
    throttle_time_ms, then the broker array's length.
    """
    client_id = b"leadscore-probe"
    body = struct.pack(">hhih", 3, 4, 7, len(client_id)) + client_id + struct.pack(">ib", 0, 0)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", _recv_exactly(sock, 4))[0]
        response = _recv_exactly(sock, size)
    correlation_id, _throttle_ms, brokers = struct.unpack_from(">iii", response)
    if correlation_id != 7:
        raise ConnectionError("unexpected Kafka response")
    return int(brokers)


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        buf += chunk
    return bytes(buf)


# --------------------------------------------------------------------------
# command line


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """Let SIGTERM unwind the stack (running clean-ups) like Ctrl-C does."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.integration.kafka_server",
        description=f"A single-node Apache Kafka {KAFKA_VERSION} broker for the tests.",
    )
    parser.add_argument("command", choices=["install", "run"],
                        help="install: fetch the jars and print their directory; "
                             "run: start a broker, print its address, stop on Ctrl-C")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            print(install())
            return 0
        with _sigterm_as_exit():
            started = time.monotonic()
            with KafkaServer() as server:
                print(server.bootstrap_servers, flush=True)
                print(
                    f"Kafka {KAFKA_VERSION} ready in {time.monotonic() - started:.1f} s; "
                    f"log: {server.log_file}; Ctrl-C to stop",
                    file=sys.stderr,
                    flush=True,
                )
                while True:
                    time.sleep(3600)
    except KafkaServerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
