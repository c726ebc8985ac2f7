# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where a host keeps PostgreSQL: data dir, config dir, binaries, service, socket, port.

Derived in one place for every role from the distribution family and the installed major, and overridden by
whatever the user set (pgrepl_data_dir, pgrepl_config_dir, pgrepl_bin_dir, pgrepl_service, ...), so Debian,
RHEL/PGDG and custom layouts (Postgres Pro, Astra) all go through the same code.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from ansible_collections.pgrepl.streaming.plugins.module_utils._binaries import BIN_DIR_GLOBS
from ansible_collections.pgrepl.streaming.plugins.module_utils._conffile import read_file_setting
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError

DEBIAN_LIKE = {"debian", "ubuntu", "astra", "linuxmint", "raspbian"}
RHEL_LIKE = {"rhel", "centos", "rocky", "almalinux", "fedora", "ol", "redos", "altlinux"}


def os_family(os_release_text: str) -> str:
    """'debian', 'rhel' or 'other', from the text of /etc/os-release (ID, then ID_LIKE)."""
    values: dict[str, str] = {}
    for line in os_release_text.splitlines():
        if "=" in line:
            key, _sep, value = line.partition("=")
            values[key.strip()] = value.strip().strip('"').lower()
    ids = [values.get("ID", "")] + values.get("ID_LIKE", "").split()
    for ident in ids:
        if ident in DEBIAN_LIKE:
            return "debian"
        if ident in RHEL_LIKE or ident.startswith("rhel"):
            return "rhel"
    return "other"


def derive_layout(family: str, majors: dict[int, str], overrides: dict[str, Any],
                  conf_reader: Callable[[str, str], str | None] = read_file_setting) -> dict[str, Any]:
    """The layout for this host: defaults of its family and major, then the user's overrides on top."""
    major = overrides.get("version")
    if major is None:
        if not majors:
            raise PgreplError("no PostgreSQL server is installed in the usual places (" + ", ".join(
                BIN_DIR_GLOBS) + "): install it, or set pgrepl_version and pgrepl_bin_dir")
        major = max(majors)
    major = int(major)
    cluster = overrides.get("cluster_name") or "main"
    bin_dir = overrides.get("bin_dir") or majors.get(major)
    if family == "debian":
        config_dir = overrides.get("config_dir") or f"/etc/postgresql/{major}/{cluster}"
        default_data = f"/var/lib/postgresql/{major}/{cluster}"
        configured = conf_reader(os.path.join(config_dir, "postgresql.conf"), "data_directory")
        data_dir = overrides.get("data_dir") or configured or default_data
        service = overrides.get("service") or f"postgresql@{major}-{cluster}"
        socket_dir = "/var/run/postgresql"
        bin_dir = bin_dir or f"/usr/lib/postgresql/{major}/bin"
    else:
        data_dir = overrides.get("data_dir") or f"/var/lib/pgsql/{major}/data"
        config_dir = overrides.get("config_dir") or data_dir
        service = overrides.get("service") or f"postgresql-{major}"
        socket_dir = "/run/postgresql"
        bin_dir = bin_dir or f"/usr/pgsql-{major}/bin"
    socket_dir = overrides.get("socket_dir") or socket_dir
    conf_file = os.path.join(config_dir, "postgresql.conf")
    port = overrides.get("port")
    if port is None:
        auto = conf_reader(os.path.join(data_dir, "postgresql.auto.conf"), "port")
        port = auto or conf_reader(conf_file, "port") or 5432
    hba_file = conf_reader(conf_file, "hba_file") or os.path.join(config_dir, "pg_hba.conf")
    return {
        "family": family,
        "major": major,
        "cluster_name": cluster,
        "data_dir": os.path.normpath(data_dir),
        "config_dir": os.path.normpath(config_dir),
        "conf_file": conf_file,
        "hba_file": hba_file,
        "bin_dir": bin_dir,
        "service": service,
        "socket_dir": socket_dir,
        "port": int(port),
    }
