"""Exit 0 when the PostgreSQL server of the given SQLAlchemy URL answers, 1 otherwise."""

from __future__ import annotations

import sys

from sqlalchemy import create_engine, text


def reachable(url: str) -> bool:
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:  # noqa: BLE001
        return False


if __name__ == "__main__":
    sys.exit(0 if reachable(sys.argv[1]) else 1)
