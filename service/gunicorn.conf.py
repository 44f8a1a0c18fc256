"""gunicorn settings for the scoring service; `nba serve` sets the NBA_* variables.

Sync workers behind nginx (service/front.py): a decision is CPU-bound and takes about a
millisecond, so threads add nothing but GIL contention; nginx keeps slow clients off them.
Each worker loads its own champion (no preload: LightGBM's OpenMP state does not survive fork
well) and runs LightGBM with one thread. Each worker also runs its own
alias poller (NBA_POLL_SECONDS, default 10, 0 = off), started after the worker has loaded the
app: a thread started in the master would not survive the fork.
"""

import os

from service import front as front_proxy
from service import gunicorn_hooks

# before any worker forks (and before prometheus_client is imported): one metrics dir per master
gunicorn_hooks.prepare_multiprocess_dir()

# nginx reads every request whole before a sync worker sees it (service/front.py);
# NBA_FRONT=none binds gunicorn itself to the port, for deployments with a buffering proxy
front = front_proxy.FrontSettings.from_env(runtime_dir=front_proxy.runtime_dir())
if front.enabled:
    bind = f"unix:{front.socket}"  # in a 0700 directory: only this user (and nginx) reach it
else:
    bind = front_proxy.listen_address(front.host, front.port)
# gunicorn's control socket (gunicornc) defaults to one path per user, ~/.gunicorn/gunicorn.ctl
# (or $XDG_RUNTIME_DIR/gunicorn.ctl): a second `nba serve` took it over and either one's exit
# removed it for the other. One per master, beside its other sockets, removed with the dir.
control_socket = str(front.runtime_dir / "gunicorn.ctl")
workers = int(os.environ.get("NBA_WORKERS", "2"))
worker_class = "sync"
timeout = int(os.environ.get("NBA_TIMEOUT", "60"))
graceful_timeout = 20
keepalive = 5
accesslog = os.environ.get("NBA_ACCESS_LOG", "-") or None  # empty: no access log
errorlog = "-"
loglevel = os.environ.get("NBA_LOG_LEVEL", "info").lower()
raw_env = ["OMP_NUM_THREADS=1"]
if front.enabled:  # nginx bounds request and header lines, answering in JSON; gunicorn's
    # own (lower, slightly differently counted) limits would answer in HTML
    limit_request_line = 0  # unlimited
    limit_request_field_size = 64 * 1024  # here 0 means gunicorn's default, 8190
    limit_request_fields = 32768  # gunicorn's maximum (default 100); nginx's buffers bound it


def when_ready(server):
    """In the master, once the socket is bound: start nginx in front of it."""
    if front.enabled:
        server.nba_front = front_proxy.Front(front)
        server.nba_front.start()


def post_fork(server, worker):
    """In each new worker: die with the master, so a `kill -9` of it frees the socket at once."""
    front_proxy.die_with_parent()
    if os.getppid() != server.pid:  # the master died before the line above took effect
        os._exit(1)


def post_worker_init(worker):
    """In each worker, once its app is loaded: start the alias poller."""
    from service import start_polling

    app = getattr(worker, "wsgi", None)
    if app is not None and "nba.settings" in getattr(app, "extensions", {}):
        start_polling(app)


def child_exit(server, worker):
    """In the master, once a worker is gone: drop its live gauges from /metrics."""
    gunicorn_hooks.child_exit(server, worker)


def on_exit(server):
    """The master is stopping: stop nginx, remove the metrics dir it created."""
    running = getattr(server, "nba_front", None)
    if running is not None:
        running.stop()
    gunicorn_hooks.remove_multiprocess_dir()


def worker_exit(server, worker):
    """In an exiting worker: stop its poller so it starts no new load during teardown."""
    from service import stop_polling

    app = getattr(worker, "wsgi", None)
    if app is not None and "nba.settings" in getattr(app, "extensions", {}):
        stop_polling(app)
