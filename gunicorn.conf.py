"""gunicorn's settings for production (docker-compose.yml's `web`, the Dockerfile's CMD).

The access log records each request's path but never its query string: API v2 clients may
send their `key` in a GET query (real clients do, and it keeps working), and an access log is
kept, shipped and read far more widely than the database. `%(U)s` is the path without the
query; `%(r)s` (the request line) and `%(q)s` (the query) would record the key, and so could
the referrer (`%(f)s`), which is therefore left out too.
"""

import os

bind = "0.0.0.0:8000"
workers = 3
accesslog = "-"
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)s "%(a)s"'

# gunicorn 25.1+ opens a control socket (for `gunicornc`) at one path per user by default, so
# two instances on one host (a second container sharing /run, a bench next to the panel) fight
# over it, and an unprivileged container may not write there at all. Nothing here uses it:
# off, unless GUNICORN_CONTROL_SOCKET names a path of this instance's own.
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "") or "gunicorn.ctl"
control_socket_disable = not os.environ.get("GUNICORN_CONTROL_SOCKET")
