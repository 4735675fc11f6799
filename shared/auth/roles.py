"""The four roles, ordered: each one may do everything the roles below it may.

    Reader < Operator < Contributor < Owner

- **Reader** reads: pipelines, runs, logs, schedules.
- **Operator** also submits and cancels runs.
- **Contributor** also publishes pipelines and manages schedules, endpoints and the registry.
- **Owner** also manages service principals.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Role(StrEnum):
    """A principal's role; the value is the wire string."""

    READER = "Reader"
    OPERATOR = "Operator"
    CONTRIBUTOR = "Contributor"
    OWNER = "Owner"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, required: Role) -> bool:
        """Whether a principal with this role may do what ``required`` may."""
        return self.rank >= required.rank

    @classmethod
    def parse(cls, value: str) -> Role:
        """The role named ``value`` (case-insensitive).

        Raises:
            ValueError: not one of the four roles; the message lists them.
        """
        for role in cls:
            if role.value.lower() == value.strip().lower():
                return role
        raise ValueError(f"'{value}' is not a role; valid roles: {', '.join(r.value for r in cls)}.")

    @classmethod
    def highest(cls, names: Iterable[str]) -> Role | None:
        """The highest role among ``names`` (e.g. a token's ``roles`` claim), ignoring names that are not roles.

        Entra ID app roles are often namespaced (``amlpipe.Operator``): the part after the last dot counts.
        """
        found: Role | None = None
        for name in names:
            try:
                role = cls.parse(name.rsplit(".", 1)[-1])
            except ValueError:
                continue
            if found is None or role.rank > found.rank:
                found = role
        return found


_RANKS = {Role.READER: 0, Role.OPERATOR: 1, Role.CONTRIBUTOR: 2, Role.OWNER: 3}
