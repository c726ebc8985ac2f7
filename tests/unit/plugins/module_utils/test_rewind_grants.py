# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rewind_grants' pure logic (module_utils/_rewind_grants.py): the documented functions, the statements, role names.
Named *_logic so that its basename differs from tests/integration/test_rewind_grants.py."""

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._names import validate_role_name
from ansible_collections.pgrepl.streaming.plugins.module_utils._rewind_grants import (
    REWIND_FUNCTIONS,
    grant_query,
    quote_identifier,
    rewind_grant_statements,
)


def test_the_functions_are_the_documented_ones() -> None:
    assert REWIND_FUNCTIONS == (
        "pg_catalog.pg_ls_dir(text, boolean, boolean)",
        "pg_catalog.pg_stat_file(text, boolean)",
        "pg_catalog.pg_read_binary_file(text)",
        "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
    )


def test_grant_statements() -> None:
    assert rewind_grant_statements("rewind_user") == [
        'GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text, boolean, boolean) TO "rewind_user"',
        'GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO "rewind_user"',
        'GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text) TO "rewind_user"',
        'GRANT EXECUTE ON FUNCTION pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean) TO "rewind_user"',
    ]
    assert rewind_grant_statements("x", ("pg_catalog.pg_stat_file(text, boolean)",)) == [
        'GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_file(text, boolean) TO "x"']


def test_quote_identifier_doubles_quotes() -> None:
    assert quote_identifier('a"; DROP ROLE b; --') == '"a""; DROP ROLE b; --"'


def test_grant_query_only_for_the_known_functions() -> None:
    with pytest.raises(PgreplError, match="is not one of the functions pg_rewind needs"):
        grant_query("pg_catalog.pg_read_file(text)", "x")
    assert grant_query(REWIND_FUNCTIONS[0], "x") is not None


@pytest.mark.parametrize("value, expected", [
    ("", "role: '' is not a valid role name"),
    (None, "role: None is not a valid role name"),
    (5, "role: 5 is not a valid role name"),
    ("a\x00b", "contains a NUL character"),
    ("r" * 64, "is 64 bytes long"),
])
def test_bad_role_names(value: Any, expected: str) -> None:
    with pytest.raises(PgreplError) as err:
        validate_role_name(value, "role", new=False)
    assert expected in str(err.value)


def test_odd_but_valid_role_names_pass() -> None:
    assert validate_role_name('Rewind "User"', "role", new=False) == 'Rewind "User"'
    assert validate_role_name("pg_monitor", "role", new=False) == "pg_monitor"  # an existing role may be reserved
