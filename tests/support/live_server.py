"""Serve a Flask app over real HTTP on a free loopback port, in a background thread."""

from __future__ import annotations

import threading

from flask import Flask
from werkzeug.serving import make_server


class LiveServer:
    def __init__(self, app: Flask, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = make_server(host, port, app, threaded=True)
        self.port = self.server.server_port
        self.url = f"http://{host}:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)
