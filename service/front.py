"""The buffering front: nginx before gunicorn's sync workers, started by the gunicorn master.

A sync worker serves one connection at a time and reads the request itself, so a client that
sends its headers or body one byte a second holds a worker for as long as it likes: two such
clients took the whole service down (issue 14). gunicorn's own deployment guide says to put a
buffering proxy in front of sync workers; nginx reads each request whole, under its own header
and body time-outs and size cap, and only then hands it to a worker over a unix socket, so a
worker only ever sees complete requests from a local peer. The measurement behind the choice
is in docs/operations.md.

`FrontSettings.from_env` is built in gunicorn.conf.py; the master starts nginx once its socket
is bound (`when_ready`) and stops it on exit. nginx's master dies with gunicorn's (the parent
death signal), so a `kill -9` of the gunicorn master frees the port at once.
"""

from __future__ import annotations

import ctypes
import logging
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

NGINX = "nginx"
PR_SET_PDEATHSIG = 1
#: the errors nginx answers itself, in the service's one error shape: nginx's status -> (status
#: sent, code, message); the 503s come with Retry-After. The codes are the ones Flask gives the
#: same status (404 not_found: a client asking for one of the internal URIs below)
_ERRORS = {
    400: (400, "bad_request", "the request could not be parsed"),
    404: (404, "not_found", "the requested URL was not found on the server"),
    405: (405, "method_not_allowed", "the method is not allowed"),
    408: (408, "request_timeout", "the request was not sent in time"),
    411: (411, "length_required", "the request needs a Content-Length"),
    413: (413, "payload_too_large", "the request body is larger than this endpoint accepts"),
    414: (414, "uri_too_long", "the request line is too long"),
    494: (431, "headers_too_large", "the request headers are too large"),
    500: (500, "internal_error", "unexpected server error; see the logs"),
    501: (501, "not_implemented", "the request uses a feature (e.g. a transfer encoding) "
                                  "this server does not support"),
    502: (503, "service_unavailable", "no worker is answering; retry shortly"),
    504: (503, "service_unavailable", "no worker answered in time; retry shortly"),
    505: (505, "http_version_not_supported", "use HTTP/1.0 or HTTP/1.1"),
}
#: the internal URIs of nginx's own error answers
ERROR_PREFIX = "/.nba-error/"
#: bulk routes (admin inventory updates) and the body size each accepts instead of the default
BULK_ROUTES = ("/v1/inventory",)


@dataclass(frozen=True)
class FrontSettings:
    """Where the front listens and what it accepts; `enabled` False serves gunicorn directly."""

    enabled: bool
    host: str
    port: int
    runtime_dir: Path
    max_body_bytes: int
    bulk_body_bytes: int
    #: seconds a client may take to send its headers, and between two reads of its body
    client_timeout: float
    #: seconds nginx waits for a worker's answer (past gunicorn's worker time-out)
    upstream_timeout: float

    @property
    def socket(self) -> Path:
        """gunicorn's unix socket, which only nginx connects to."""
        return self.runtime_dir / "gunicorn.sock"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, *,
                 runtime_dir: Path | None = None) -> FrontSettings:
        """NBA_FRONT (nginx | none), NBA_HOST/NBA_PORT, NBA_MAX_BODY_BYTES, ... from the env."""
        from service.settings import ServiceSettings

        env = dict(os.environ if env is None else env)
        front = (env.get("NBA_FRONT") or "nginx").strip().lower()
        if front not in ("nginx", "none"):
            raise ValueError(f"NBA_FRONT must be nginx or none, got {front!r}")
        limits = ServiceSettings.from_env(env)
        timeout = float(env.get("NBA_TIMEOUT", "60"))
        return cls(enabled=front == "nginx", host=env.get("NBA_HOST", "127.0.0.1"),
                   port=int(env.get("NBA_PORT", "8000")),
                   runtime_dir=runtime_dir or Path(tempfile.gettempdir()),
                   max_body_bytes=limits.max_body_bytes,
                   bulk_body_bytes=limits.bulk_body_bytes,
                   client_timeout=float(env.get("NBA_CLIENT_TIMEOUT", "10")),
                   upstream_timeout=timeout + 5)


def listen_address(host: str, port: int) -> str:
    """host:port as nginx's `listen` takes it (IPv6 in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def nginx_config(s: FrontSettings) -> str:
    """The whole nginx.conf for one `nba serve`: one server, every path into `runtime_dir`."""
    d = s.runtime_dir
    user = ""
    if os.geteuid() == 0:  # else nginx's workers would run as nobody and not reach the socket
        user = f"user {pwd.getpwuid(0).pw_name};"
    proxy = """
            proxy_pass http://nba;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header Connection close;"""
    bulk = "".join(f"""
        location = {route} {{
            client_max_body_size {s.bulk_body_bytes};{proxy}
        }}""" for route in BULK_ROUTES)
    retry = "\n            add_header Retry-After 2 always;"
    # internal URIs, not named locations: an error met while reading the request line (a
    # 414, a 400) has no URI yet, and nginx answers a redirect to a named location with its
    # own HTML 500 ("empty URI in redirect to named location")
    errors = "".join(f"""
        location = {ERROR_PREFIX}{status} {{
            internal;
            default_type application/json;{retry if sent == 503 else ""}
            return {sent} '{{"error": {{"code": "{code}", "message": "{message}", "details": null}}}}';
        }}""" for status, (sent, code, message) in _ERRORS.items())  # noqa: E501
    # `=sent`: else the answer keeps nginx's own status (a 494 goes out as 400, a 502 as 502)
    pages = "\n".join(f"        error_page {status} ={sent} {ERROR_PREFIX}{status};"
                      for status, (sent, _, _) in _ERRORS.items())
    return f"""# written by service/front.py for one `nba serve`; regenerated at every start
{user}
daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log stderr error;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    server_tokens off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;

    # a client gets this long for its headers, and between two reads of its body; then 408
    client_header_timeout {s.client_timeout:g}s;
    client_body_timeout {s.client_timeout:g}s;
    send_timeout {s.client_timeout:g}s;
    keepalive_timeout 5s;
    reset_timedout_connection on;
    # refused with 413 from Content-Length alone, before any of the body is read
    client_max_body_size {s.max_body_bytes};
    client_body_buffer_size {s.max_body_bytes};
    client_header_buffer_size 4k;
    large_client_header_buffers 4 16k;

    upstream nba {{
        server unix:{s.socket};
    }}

    server {{
        listen {listen_address(s.host, s.port)} backlog=4096;
        proxy_request_buffering on;
        proxy_buffering on;
        proxy_http_version 1.0;
        proxy_connect_timeout 5s;
        proxy_send_timeout {s.upstream_timeout:g}s;
        proxy_read_timeout {s.upstream_timeout:g}s;
        proxy_intercept_errors off;
        proxy_next_upstream off;
{pages}

        location / {{{proxy}
        }}{bulk}{errors}
    }}
}}
"""


_runtime_dirs: dict[int, Path] = {}


def runtime_dir() -> Path:
    """This master's private directory (socket, nginx.conf, nginx's temp files), made once.

    Per master pid: gunicorn re-reads its config on HUP, and that must not move the socket.
    """
    pid = os.getpid()
    if pid not in _runtime_dirs:
        _remove_orphans()
        path = Path(tempfile.mkdtemp(prefix="nba-serve-"))
        (path / "master.pid").write_text(str(pid))
        _runtime_dirs[pid] = path
    return _runtime_dirs[pid]


def _remove_orphans() -> None:
    """Remove the runtime dirs of masters that died without cleaning up (`kill -9`)."""
    for path in Path(tempfile.gettempdir()).glob("nba-serve-*"):
        try:
            owner = int((path / "master.pid").read_text())
            os.kill(owner, 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except (OSError, ValueError):  # not ours to judge (another user's, or half made)
            continue


class Front:
    """One nginx master process in front of this gunicorn master's unix socket."""

    def __init__(self, settings: FrontSettings) -> None:
        self.settings = settings
        self._process: subprocess.Popen | None = None

    def start(self) -> None:
        """Write the config and start nginx; raises RuntimeError if it does not come up."""
        binary = shutil.which(NGINX) or shutil.which(NGINX, path="/usr/sbin:/usr/local/sbin")
        if binary is None:
            raise RuntimeError("nginx is not installed (`make nginx`), or run with NBA_FRONT=none "
                               "behind a buffering proxy of your own")
        d = self.settings.runtime_dir
        d.mkdir(parents=True, exist_ok=True)
        conf = d / "nginx.conf"
        conf.write_text(nginx_config(self.settings))
        self._process = subprocess.Popen([binary, "-p", str(d), "-e", "stderr", "-c", str(conf)],
                                         preexec_fn=_die_with_parent, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"nginx exited at start (status {self._process.returncode}); "
                                   "see the lines above")
            if (d / "nginx.pid").exists():
                log.info("nginx (pid %d) listens on %s for the workers at %s",
                         self._process.pid, listen_address(self.settings.host,
                                                           self.settings.port),
                         self.settings.socket)
                return
            time.sleep(0.05)
        raise RuntimeError("nginx did not start within 10 s")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop nginx (fast shutdown; SIGKILL after `timeout`) and remove the runtime dir."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.settings.runtime_dir, ignore_errors=True)


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send `sig` to this process when its parent exits (Linux only).

    gunicorn workers and nginx call this right after the fork: when the master is killed with
    SIGKILL (no chance to stop them), they go too instead of keeping the port.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the workers' own parent check remains
        pass


def _die_with_parent() -> None:
    die_with_parent(signal.SIGTERM)
