"""A real SMTP server for tests (aiosmtpd) that keeps what it receives."""

from __future__ import annotations

import email
import email.policy
import re
import socket
import threading
import time
from email.message import EmailMessage

from aiosmtpd.controller import Controller

LINK = re.compile(r"https?://\S+")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Handler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.box.lock:
            self.box.messages.append((list(envelope.rcpt_tos), message))
            self.box.arrived.notify_all()
        return "250 OK"


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self.port = _free_port()
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for rcpts, m in self.messages if address.lower() in
                    (r.lower() for r in rcpts)]

    def wait_for(self, address: str, count: int = 1, timeout: float = 5.0) -> list[EmailMessage]:
        """The mails to ``address`` once ``count`` arrived (AssertionError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                found = [m for rcpts, m in self.messages
                         if address.lower() in (r.lower() for r in rcpts)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} mail(s) to {address}, got {len(found)}")
                self.arrived.wait(left)


def body_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    return part.get_content() if part else message.get_content()


def links_in(message: EmailMessage) -> list[str]:
    return LINK.findall(body_of(message))
