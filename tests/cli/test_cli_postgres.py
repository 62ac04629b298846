"""``dcmups scp --db postgresql://...``: what a user sees when the database is not usable.

One line on stderr, no traceback, no password, and the exit status of the README's table:
an unreachable server is a network failure (3); a server that refuses the role or has no
such database is a local setting to fix (2). Against a real throwaway PostgreSQL.
"""

from __future__ import annotations

import pytest

from tests.cli.test_exits import dcmups, one_line
from tests.servers import free_port, postgres
from tests.services.scp.pg import needs_postgres


def test_an_unreachable_server_is_a_network_failure() -> None:
    pytest.importorskip("psycopg")
    url = f"postgresql://ups:secret@127.0.0.1:{free_port()}/ups"
    done = dcmups("scp", "UPSSCP@127.0.0.1:0", "--db", url)
    assert done.returncode == 3, done.stderr
    line = one_line(done)
    assert "cannot connect" in line and "secret" not in line
    assert "postgresql://ups@127.0.0.1:" in line


def test_a_refused_role_or_missing_database_is_exit_2() -> None:
    needs_postgres()
    with postgres() as pg:
        base = f"postgresql://{{user}}:secret@{pg.host}:{pg.port}/{{db}}"
        for url, says in (
            (base.format(user=pg.user, db="nosuchdb"), 'database "nosuchdb" does not exist'),
            (base.format(user="nosuchrole", db=pg.database), 'role "nosuchrole" does not exist'),
        ):
            done = dcmups("scp", "UPSSCP@127.0.0.1:0", "--db", url)
            assert done.returncode == 2, done.stderr
            line = one_line(done)
            assert says in line and "secret" not in line, line


def test_another_scheme_is_refused() -> None:
    done = dcmups("scp", "UPSSCP@127.0.0.1:0", "--db", "mysql://u:pw@h/db")
    assert done.returncode == 2
    line = one_line(done)
    assert "postgresql://" in line and "pw" not in line
