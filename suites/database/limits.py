"""What the server allows the stack's role: its connection settings and limits, read, never exercised.

The read-only half of the connection checks: enough to tell, on a live stack, whether 1024 connections
can be had at all, and to name a role or database limit *before* a check waits for connections that
the server would never grant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

REQUIRED_MAX_CONNECTIONS = 1024


@dataclass(frozen=True)
class ConnectionLimits:
    """The server's connection settings as the stack's role sees them (-1 limits: none)."""

    max_connections: int
    reserved: int  # superuser_reserved_connections (+ reserved_connections, PostgreSQL 16+)
    role: str
    role_limit: int
    database: str
    database_limit: int
    open_total: int
    open_by_role: int

    @property
    def usable(self) -> int:
        """Connections the role may hold at most: max_connections less the reserved slots, capped by its limits."""
        caps = [self.max_connections - self.reserved]
        caps += [limit for limit in (self.role_limit, self.database_limit) if limit >= 0]
        return min(caps)

    @property
    def headroom(self) -> int:
        """Connections the role could still open now."""
        caps = [self.max_connections - self.reserved - self.open_total]
        if self.role_limit >= 0:
            caps.append(self.role_limit - self.open_by_role)
        return min(caps)

    def problems(self) -> list[str]:
        """Why the stack cannot have the connections the guide sizes it for, each with its fix."""
        found = []
        if self.max_connections != REQUIRED_MAX_CONNECTIONS:
            found.append(
                f"max_connections is {self.max_connections}; the install guide requires {REQUIRED_MAX_CONNECTIONS} "
                "(sized for hundreds of consolidaters). Fix: start PostgreSQL with -c max_connections=1024."
            )
        if 0 <= self.role_limit < self.max_connections - self.reserved:
            found.append(
                f"role {self.role!r} has CONNECTION LIMIT {self.role_limit} (pg_roles.rolconnlimit): it gets at most "
                f"{self.role_limit} of the {self.max_connections - self.reserved} connections. Fix: ALTER ROLE "
                f'"{self.role}" CONNECTION LIMIT -1.'
            )
        if 0 <= self.database_limit < self.max_connections - self.reserved:
            found.append(
                f"database {self.database!r} has CONNECTION LIMIT {self.database_limit} "
                f'(pg_database.datconnlimit). Fix: ALTER DATABASE "{self.database}" CONNECTION LIMIT -1.'
            )
        return found

    def evidence(self) -> dict[str, int | str]:
        return {
            "max_connections": self.max_connections,
            "reserved": self.reserved,
            f"role {self.role} limit": self.role_limit,
            f"database {self.database} limit": self.database_limit,
            "open (all roles)": self.open_total,
            f"open ({self.role})": self.open_by_role,
            "usable by the role": self.usable,
            "headroom now": self.headroom,
        }


def read_limits(conn: psycopg.Connection[Any]) -> ConnectionLimits:
    """Read the limits over ``conn`` (the stack's role; nothing here needs a superuser)."""
    row = conn.execute(
        "SELECT current_setting('max_connections')::int, "
        "current_setting('superuser_reserved_connections')::int "
        "  + coalesce(current_setting('reserved_connections', true), '0')::int, "
        "current_user, (SELECT rolconnlimit FROM pg_roles WHERE rolname = current_user), "
        "current_database(), (SELECT datconnlimit FROM pg_database WHERE datname = current_database()), "
        "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'), "
        "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND usename = current_user)"
    ).fetchone()
    assert row is not None
    return ConnectionLimits(
        int(row[0]), int(row[1]), str(row[2]), int(row[3]), str(row[4]), int(row[5]), int(row[6]), int(row[7])
    )
