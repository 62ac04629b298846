"""The throwaway PostgreSQL and NATS servers the scale-out tests run against, checked once."""

from __future__ import annotations

import asyncio
import os

import pytest

from tests import servers

REQUIRED = os.environ.get("DCMUPS_REQUIRE_PEERS") == "1"


def _needs(present: bool, what: str) -> None:
    if not present:
        if REQUIRED:
            pytest.fail(f"{what} is required (DCMUPS_REQUIRE_PEERS=1) but not installed")
        pytest.skip(f"{what} is not installed")


def test_postgres_cluster_starts_answers_and_goes_away() -> None:
    _needs(servers.pg_bin() is not None, "PostgreSQL")
    psycopg = pytest.importorskip("psycopg")
    with servers.postgres() as pg:
        with psycopg.connect(pg.dsn) as conn:
            assert conn.execute("select 1 + 1").fetchone() == (2,)
        port = pg.port
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(f"postgresql://{pg.user}@127.0.0.1:{port}/{pg.database}", connect_timeout=2)


def test_nats_server_with_jetstream_starts_and_goes_away() -> None:
    _needs(servers.nats_bin() is not None, "nats-server")
    nats = pytest.importorskip("nats")

    async def round_trip(url: str) -> int:
        client = await nats.connect(url)
        try:
            js = client.jetstream()
            await js.add_stream(name="check", subjects=["check.>"])
            ack = await js.publish("check.one", b"x")
            return int(ack.seq)
        finally:
            await client.close()

    with servers.nats() as server:
        assert asyncio.run(round_trip(server.url)) == 1
        server.stop()
        server.start()
        assert asyncio.run(round_trip(server.url)) == 2  # the stream survived the restart
