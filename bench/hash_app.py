"""The Argon2id verify behind a bare Flask route (``run.py``'s hash-route ceiling).

``POST /hash`` with ``password=...``: one ``passwords.verify_password`` (the login's own
function, with its per-core slot) against a fixed hash, then a 302, under the same WSGI server,
core and connection count as the login scenario. It shows what a login could reach on this
set-up if it did nothing but hash: the idle probe's rate minus what sharing the core with the
HTTP server and the load costs. Parameters: ``BENCH_ARGON2`` (JSON: ``argon2_time_cost``,
``argon2_memory_kib``, ``argon2_parallelism``) and ``BENCH_PASSWORD``. Bench only.
"""

from __future__ import annotations

import json
import os

from flask import Flask, abort, redirect, request

from servicekonto.accounts import passwords

app = Flask(__name__)
app.config["SERVICEKONTO"] = json.loads(os.environ["BENCH_ARGON2"])
with app.app_context():
    _HASH = passwords.hash_password(os.environ["BENCH_PASSWORD"])


@app.post("/hash")
def verify() -> object:
    if not passwords.verify_password(_HASH, request.form.get("password", "")):
        abort(403)
    return redirect("/done")
