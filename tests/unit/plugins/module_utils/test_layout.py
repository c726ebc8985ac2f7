"""Layout discovery: family from os-release, majors from install paths, defaults and overrides."""

from __future__ import annotations

import pytest

from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._layout import (
    derive_layout,
    os_family,
)


def no_conf(path: str, name: str) -> None:
    return None


@pytest.mark.parametrize(("text", "family"), [
    ('ID=debian\nVERSION_ID="12"\n', "debian"),
    ('ID=ubuntu\nID_LIKE=debian\n', "debian"),
    ('ID=astra\nID_LIKE="debian"\n', "debian"),
    ('ID="rocky"\nID_LIKE="rhel centos fedora"\n', "rhel"),
    ('ID="rhel"\n', "rhel"),
    ('ID=arch\n', "other"),
])
def test_os_family(text: str, family: str) -> None:
    assert os_family(text) == family


def test_debian_defaults_follow_the_cluster() -> None:
    layout = derive_layout("debian", {15: "/usr/lib/postgresql/15/bin"}, {}, no_conf)
    assert layout["data_dir"] == "/var/lib/postgresql/15/main"
    assert layout["config_dir"] == "/etc/postgresql/15/main"
    assert layout["hba_file"] == "/etc/postgresql/15/main/pg_hba.conf"
    assert layout["service"] == "postgresql@15-main"
    assert layout["socket_dir"] == "/var/run/postgresql"
    assert layout["port"] == 5432


def test_debian_reads_data_directory_and_port_from_its_config() -> None:
    conf = {("/etc/postgresql/16/alt/postgresql.conf", "data_directory"): "/srv/pg/16",
            ("/etc/postgresql/16/alt/postgresql.conf", "port"): "5433"}
    layout = derive_layout("debian", {16: "/usr/lib/postgresql/16/bin"}, {"cluster_name": "alt"},
                           lambda path, name: conf.get((path, name)))
    assert layout["data_dir"] == "/srv/pg/16"
    assert layout["port"] == 5433
    assert layout["service"] == "postgresql@16-alt"


def test_rhel_defaults_keep_config_inside_the_data_dir() -> None:
    layout = derive_layout("rhel", {16: "/usr/pgsql-16/bin"}, {}, no_conf)
    assert layout["data_dir"] == layout["config_dir"] == "/var/lib/pgsql/16/data"
    assert layout["service"] == "postgresql-16"
    assert layout["bin_dir"] == "/usr/pgsql-16/bin"


def test_custom_layout_overrides_everything() -> None:
    overrides = {"version": 16, "data_dir": "/var/lib/pgpro/1c-16/data", "bin_dir": "/opt/pgpro/1c-16/bin",
                 "service": "postgrespro-1c-16", "port": 5444}
    layout = derive_layout("debian", {}, overrides, no_conf)
    assert layout["data_dir"] == "/var/lib/pgpro/1c-16/data"
    assert layout["bin_dir"] == "/opt/pgpro/1c-16/bin"
    assert layout["service"] == "postgrespro-1c-16"
    assert layout["port"] == 5444


def test_no_server_installed_is_a_clear_error() -> None:
    with pytest.raises(PgreplError, match="no PostgreSQL server is installed"):
        derive_layout("debian", {}, {}, no_conf)
