"""Roles: order, parsing, and the highest role of a claim."""

from __future__ import annotations

import pytest

from shared.auth import Role
from shared.auth.tokens import InsufficientRoleError, Principal


def test_roles_are_ordered_reader_operator_contributor_owner() -> None:
    order = [Role.READER, Role.OPERATOR, Role.CONTRIBUTOR, Role.OWNER]
    assert sorted(order, key=lambda r: r.rank) == order
    assert Role.OWNER.allows(Role.READER) and Role.OPERATOR.allows(Role.OPERATOR)
    assert not Role.READER.allows(Role.OPERATOR) and not Role.CONTRIBUTOR.allows(Role.OWNER)


def test_role_values_are_the_wire_strings() -> None:
    assert [r.value for r in Role] == ["Reader", "Operator", "Contributor", "Owner"]


def test_parse_is_case_insensitive_and_lists_valid_roles_on_error() -> None:
    assert Role.parse("operator") is Role.OPERATOR
    with pytest.raises(ValueError, match="Reader, Operator, Contributor, Owner"):
        Role.parse("Admin")


def test_highest_role_of_a_claim_ignores_unknown_names_and_namespaces() -> None:
    assert Role.highest(["Reader", "amlpipe.Contributor", "Other.Thing"]) is Role.CONTRIBUTOR
    assert Role.highest(["Admin"]) is None
    assert Role.highest([]) is None


def test_principal_require_raises_forbidden_naming_both_roles() -> None:
    reader = Principal(id="p", role=Role.READER, tenant_id="t", issuer="amlpipe")
    reader.require(Role.READER)
    with pytest.raises(InsufficientRoleError, match="Owner.*Reader") as caught:
        reader.require(Role.OWNER)
    assert caught.value.status == 403


def test_principal_without_role_may_do_nothing() -> None:
    with pytest.raises(InsufficientRoleError, match="no amlpipe role"):
        Principal(id="p", role=None, tenant_id=None, issuer="x").require(Role.READER)
