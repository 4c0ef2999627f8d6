"""A bare Flask route (the WSGI server + Flask ceiling): ``gunicorn bench.bare_app:app``."""

from flask import Flask

app = Flask(__name__)


@app.get("/bare")
def bare() -> dict[str, str]:
    return {"ok": "yes"}
