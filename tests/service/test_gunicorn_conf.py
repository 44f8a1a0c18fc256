"""service/gunicorn.conf.py as gunicorn itself reads it, without starting a server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import service

CONFIG = Path(service.__file__).with_name("gunicorn.conf.py")
# gunicorn's own reading of the config file (the master's first step), then clean up what
# the file made for that master: its runtime dir and its metrics dir
READ = """
import json, shutil, sys
from pathlib import Path
from gunicorn.app.wsgiapp import WSGIApplication
from service import gunicorn_hooks
sys.argv = ["gunicorn", "-c", sys.argv[1], "service.wsgi:app"]
cfg = WSGIApplication().cfg
print(json.dumps({"socket": cfg.control_socket, "disabled": cfg.control_socket_disable}))
shutil.rmtree(Path(cfg.control_socket).parent, ignore_errors=True)
gunicorn_hooks.remove_multiprocess_dir()
"""


def test_each_master_has_its_own_control_socket(tmp_path):
    """Two `nba serve` on one host used ~/.gunicorn/gunicorn.ctl, one removing the other's."""
    env = os.environ | {"HOME": str(tmp_path), "NBA_FRONT": "none"}
    env.pop("XDG_RUNTIME_DIR", None)
    masters = [subprocess.Popen([sys.executable, "-c", READ, str(CONFIG)], env=env,
                                stdout=subprocess.PIPE, text=True) for _ in range(2)]
    read = [json.loads(m.communicate(timeout=60)[0].strip().splitlines()[-1]) for m in masters]
    sockets = [Path(r["socket"]) for r in read]
    assert sockets[0] != sockets[1]
    assert not any(r["disabled"] for r in read)
    assert all(s.name == "gunicorn.ctl" and s.parent.name.startswith("nba-serve-")
               for s in sockets)
    assert not any(s.is_relative_to(tmp_path) for s in sockets)  # not under ~/.gunicorn
