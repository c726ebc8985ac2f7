# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils/_tls.py (pgrepl_tls): where a node keeps its files, what its certificate names, the settings, the
pg_hba type, the client options, the refusals; and the one place every module's conninfo takes its TLS keywords."""

from __future__ import annotations

from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.pgrepl.streaming.plugins.filter.tls import FilterModule, tls_plan, tls_problems
from ansible_collections.pgrepl.streaming.plugins.module_utils._clone import conninfo_pairs, request_from_params
from ansible_collections.pgrepl.streaming.plugins.module_utils._conninfo import check_sslrootcert, tls_pairs
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError
from ansible_collections.pgrepl.streaming.plugins.module_utils._rewind import rewind_request, source_pairs
from ansible_collections.pgrepl.streaming.plugins.module_utils._standby_config import build_standby_request
from ansible_collections.pgrepl.streaming.plugins.module_utils._tls import (
    TlsError,
    certificate_names,
    check_options,
    libpq_matches_ip,
    libpq_version,
    node_tls_dir,
)
from ansible_collections.pgrepl.streaming.plugins.module_utils._tls import tls_plan as plan_of
from ansible_collections.pgrepl.streaming.plugins.module_utils._tls import tls_problems as problems_of

DEBIAN = {"data_dir": "/var/lib/postgresql/17/main", "config_dir": "/etc/postgresql/17/main", "major": 17}
RHEL = {"data_dir": "/var/lib/pgsql/17/data", "config_dir": "/var/lib/pgsql/17/data", "major": 17}
CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"
FILES = {"/pki/ca.crt": CERT, "/pki/db1.crt": CERT, "/pki/db1.key": KEY,
         "/pki/enc.key": "-----BEGIN ENCRYPTED PRIVATE KEY-----\nx\n-----END ENCRYPTED PRIVATE KEY-----\n"}


def reader(path: str) -> str:
    if path not in FILES:
        raise FileNotFoundError(2, "No such file or directory")
    return FILES[path]


def test_the_files_live_in_the_configuration_directory_or_beside_the_data_directory() -> None:
    assert node_tls_dir(DEBIAN) == "/etc/postgresql/17/main/pgrepl-tls"
    # RHEL keeps its configuration in the data directory, which pg_basebackup copies onto the standbys.
    assert node_tls_dir(RHEL) == "/var/lib/pgsql/17/pgrepl-tls"
    assert node_tls_dir(RHEL, "/etc/pki/pg/") == "/etc/pki/pg"
    with pytest.raises(TlsError, match=r"pgrepl_tls_dir: '/var/lib/pgsql/17/data/tls' is inside the data dir"):
        node_tls_dir(RHEL, "/var/lib/pgsql/17/data/tls")
    with pytest.raises(TlsError, match=r"pgrepl_tls_dir: 'tls' is not an absolute path"):
        node_tls_dir(DEBIAN, "tls")


@pytest.mark.parametrize(("host", "address", "names"), [
    ("db1", "10.0.0.5", ["DNS:db1", "IP:10.0.0.5"]),
    ("db1", "2001:DB8::5", ["DNS:db1", "IP:2001:db8::5"]),
    ("db1", "db1.example.com", ["DNS:db1", "DNS:db1.example.com"]),
    ("db1.example.com", "db1.example.com", ["DNS:db1.example.com"]),
    ("10.0.0.5", "10.0.0.5", ["IP:10.0.0.5"]),
    ("db_1", "", ["DNS:db_1"]),
    ("db1", "fe80::1%eth0", ["DNS:db1", "IP:fe80::1"]),
])
def test_the_certificate_names_its_inventory_name_and_its_address(host: str, address: str, names: list[str]) -> None:
    assert certificate_names(host, address) == names


def test_without_tls_nothing_changes_and_connections_keep_libpqs_default() -> None:
    plan = plan_of(False, "db1", "10.0.0.5", DEBIAN)
    assert plan == {"enabled": False, "hba_contype": "host", "hba_replaced": "hostssl", "settings": {},
                    "client": {"sslmode": "prefer", "sslrootcert": ""}}


def test_the_roles_ca_signs_every_node() -> None:
    plan = plan_of(True, "db1", "10.0.0.5", DEBIAN, ca_dir="/srv/ansible/pgrepl-tls")
    folder = "/etc/postgresql/17/main/pgrepl-tls"
    assert plan["own"] is False
    assert plan["files"] == {"ca": f"{folder}/ca.crt", "cert": f"{folder}/server.crt", "key": f"{folder}/server.key"}
    assert plan["sources"] == {"ca": "/srv/ansible/pgrepl-tls/ca.crt", "cert": "/srv/ansible/pgrepl-tls/db1.crt",
                               "key": "/srv/ansible/pgrepl-tls/db1.key"}
    assert plan["ca_key"] == "/srv/ansible/pgrepl-tls/ca.key" and plan["csr"] == "/srv/ansible/pgrepl-tls/db1.csr"
    assert plan["settings"] == {"ssl": "on", "ssl_ca_file": f"{folder}/ca.crt", "ssl_cert_file": f"{folder}/server.crt",
                                "ssl_key_file": f"{folder}/server.key"}
    assert (plan["hba_contype"], plan["hba_replaced"]) == ("hostssl", "host")
    assert plan["client"] == {"sslmode": "verify-full", "sslrootcert": f"{folder}/ca.crt"}
    assert plan["names"] == ["DNS:db1", "IP:10.0.0.5"]


def test_a_host_name_that_is_no_file_name_is_made_one() -> None:
    plan = plan_of(True, "db 1/x", "10.0.0.5", DEBIAN, ca_dir="/ca")
    assert plan["sources"]["cert"] == "/ca/db_1_x.crt"


def test_your_own_files_are_checked_and_copied() -> None:
    plan = plan_of(True, "db1", "10.0.0.5", RHEL, ca_cert="/pki/ca.crt", cert="/pki/db1.crt", key="/pki/db1.key",
                   sslmode="verify-ca", reader=reader)
    assert plan["own"] is True and plan["ca_dir"] == "" and plan["csr"] == ""
    assert plan["sources"] == {"ca": "/pki/ca.crt", "cert": "/pki/db1.crt", "key": "/pki/db1.key"}
    assert plan["client"] == {"sslmode": "verify-ca", "sslrootcert": "/var/lib/pgsql/17/pgrepl-tls/ca.crt"}


@pytest.mark.parametrize(("options", "message"), [
    ({"cert": "/pki/db1.crt", "ca_cert": "/pki/ca.crt"},
     r"db1: pgrepl_tls_cert is set \('/pki/db1.crt'\) but pgrepl_tls_key is not"),
    ({"key": "/pki/db1.key", "ca_cert": "/pki/ca.crt"},
     r"db1: pgrepl_tls_key is set \('/pki/db1.key'\) but pgrepl_tls_cert is not"),
    ({"ca_cert": "/pki/ca.crt"}, r"db1: pgrepl_tls_ca_cert is set \('/pki/ca.crt'\) but this host has no"),
    ({"cert": "/pki/db1.crt", "key": "/pki/db1.key"},
     r"db1: pgrepl_tls_cert is set \('/pki/db1.crt'\) but pgrepl_tls_ca_cert is not"),
    ({"ca_cert": "/pki/ca.crt", "cert": "/pki/gone.crt", "key": "/pki/db1.key"},
     r"db1: pgrepl_tls_cert: '/pki/gone.crt' cannot be read on the controller \(No such file or directory\)"),
    ({"ca_cert": "/pki/ca.crt", "cert": "/pki/db1.key", "key": "/pki/db1.key"},
     r"db1: pgrepl_tls_cert: '/pki/db1.key' holds no PEM block of a CERTIFICATE"),
    ({"ca_cert": "/pki/ca.crt", "cert": "/pki/db1.crt", "key": "/pki/db1.crt"},
     r"db1: pgrepl_tls_key: '/pki/db1.crt' holds no PEM block"),
    ({"ca_cert": "/pki/ca.crt", "cert": "/pki/db1.crt", "key": "/pki/enc.key"},
     r"db1: pgrepl_tls_key: '/pki/enc.key' is an encrypted private key"),
    ({"ca_cert": "ca.crt", "cert": "/pki/db1.crt", "key": "/pki/db1.key"},
     r"db1: pgrepl_tls_ca_cert: 'ca.crt' is not an absolute path"),
    ({"sslmode": "require"}, r"db1: pgrepl_tls_sslmode: 'require' is not one of verify-full, verify-ca"),
    ({"cert": 5}, r"db1: pgrepl_tls_cert: 5 is a int, a path is expected"),
])
def test_bad_options_are_refused_naming_the_option_and_the_value(options: dict[str, Any], message: str) -> None:
    with pytest.raises(TlsError, match=message):
        check_options("db1", reader=reader, **options)
    with pytest.raises(TlsError, match=message):
        plan_of(True, "db1", "10.0.0.5", DEBIAN, ca_dir="/ca", reader=reader, **options)


def test_an_unreadable_file_on_the_real_controller(tmp_path: Any) -> None:
    key = tmp_path / "db1.key"
    key.write_text(KEY)
    key.chmod(0)
    cert = tmp_path / "db1.crt"
    cert.write_text(CERT)
    import os  # pylint: disable=import-outside-toplevel
    if os.geteuid() == 0:
        # root reads any file: a missing one stands for an unreadable one here.
        key = tmp_path / "missing.key"
    with pytest.raises(TlsError, match=rf"pgrepl_tls_key: '{key}' cannot be read on the controller"):
        check_options("db1", ca_cert=str(cert), cert=str(cert), key=str(key))


def test_the_roles_ca_needs_a_controller_directory() -> None:
    with pytest.raises(TlsError, match=r"pgrepl_tls_ca_dir: is empty"):
        plan_of(True, "db1", "10.0.0.5", DEBIAN)


@pytest.mark.parametrize(("libpq", "major", "able"), [
    (170004, 17, True), (150000, 15, True), (140011, 17, False), (170004, 14, False), (None, 13, False),
    (None, None, True), (None, 16, True),
])
def test_libpq_matches_an_ip_san_from_15_on(libpq: int | None, major: int | None, able: bool) -> None:
    assert libpq_matches_ip(libpq, major) is able


def node(**overrides: Any) -> dict[str, Any]:
    return dict({"tls": True, "address": "10.0.0.5", "ca_cert": "", "cert": "", "key": "", "sslmode": "verify-full",
                 "tls_dir": "", "layout": DEBIAN, "libpq_version": 170004, "major": 17}, **overrides)


def test_a_cluster_whose_tls_can_work_has_no_problem() -> None:
    assert problems_of({"db1": node(), "db2": node(address="10.0.0.6")}) == []
    assert problems_of({"db1": node(tls=False), "db2": node(tls=False, cert="/x")}) == []


def test_an_ip_address_with_verify_full_on_libpq_before_15_is_refused_naming_both_hosts() -> None:
    nodes = {"db1": node(address="10.0.0.5"), "db2": node(address="db2.example.com", libpq_version=140011, major=14)}
    assert problems_of(nodes) == [
        "db2 (libpq 14, PostgreSQL 14) would connect to db1 at 10.0.0.5 with sslmode=verify-full, but libpq before 15 "
        "cannot match an IP address against a certificate: give db1 a DNS name in pgrepl_address, or set "
        "pgrepl_tls_sslmode: verify-ca (the CA is verified, not the name)"]
    # DNS names everywhere, or verify-ca: nothing to refuse.
    assert problems_of(dict(nodes, db1=node(address="db1.example.com"))) == []
    assert problems_of({name: dict(value, sslmode="verify-ca") for name, value in nodes.items()}) == []


def test_tls_on_some_nodes_only_or_two_cas_are_refused() -> None:
    assert problems_of({"db1": node(), "db2": node(tls=False), "db3": node(tls=False)}) == [
        "pgrepl_tls is true on db1 but false on db2, db3: set it for every node alike (group_vars/all), a node "
        "without TLS could not reach the others"]
    problems = problems_of({"db1": node(ca_cert="/pki/ca.crt", cert="/pki/db1.crt", key="/pki/db1.key"),
                            "db2": node(ca_cert="/pki/other.crt", cert="/pki/db1.crt", key="/pki/db1.key")},
                           reader=reader)
    assert problems[0].startswith("db2: pgrepl_tls_ca_cert: '/pki/other.crt' cannot be read on the controller")
    assert problems[1].startswith("pgrepl_tls_ca_cert differs between the nodes (db1: '/pki/ca.crt', db2: "
                                  "'/pki/other.crt')")


def test_every_nodes_own_options_are_checked_at_once() -> None:
    problems = problems_of({"db1": node(cert="/pki/db1.crt"), "db2": node(tls_dir="/var/lib/postgresql/17/main/t")})
    assert problems[0].startswith("db1: pgrepl_tls_cert is set ('/pki/db1.crt') but pgrepl_tls_key is not")
    assert problems[1].startswith("db2: pgrepl_tls_dir: '/var/lib/postgresql/17/main/t' is inside the data dir")


def test_the_roles_ca_without_community_crypto_is_refused() -> None:
    problems = problems_of({"db1": node()}, crypto_available=False)
    assert problems and "community.crypto collection" in problems[0]
    # Your own files need nothing of it.
    own = node(ca_cert="/pki/ca.crt", cert="/pki/db1.crt", key="/pki/db1.key")
    assert problems_of({"db1": own}, crypto_available=False, reader=reader) == []


def test_the_filters() -> None:
    assert set(FilterModule().filters()) == {"tls_plan", "tls_problems"}
    assert tls_plan("yes", "db1", "10.0.0.5", DEBIAN, ca_dir="/ca")["enabled"] is True
    assert tls_plan("no", "db1")["client"] == {"sslmode": "prefer", "sslrootcert": ""}
    with pytest.raises(AnsibleFilterError, match=r"pgrepl_tls: "):
        tls_plan("maybe", "db1")
    with pytest.raises(AnsibleFilterError, match=r"db1: pgrepl_tls_cert is set"):
        tls_plan(True, "db1", "10.0.0.5", DEBIAN, cert="/x.crt")
    assert tls_problems({"db1": dict(node(), tls="true"), "db2": dict(node(), tls="false")})[0].startswith(
        "pgrepl_tls is true on db1 but false on db2")
    with pytest.raises(AnsibleFilterError, match=r"not a dict of nodes"):
        tls_problems([])


def test_the_libpq_of_this_machine_is_read() -> None:
    version = libpq_version()
    assert version is None or version >= 100000


# ---------------------------------------------------------------------------- one place for the TLS keywords

def test_tls_pairs_and_the_ca_file_option() -> None:
    assert tls_pairs("prefer", None) == [("sslmode", "prefer")]
    assert tls_pairs("verify-full", "/etc/pg/ca.crt") == [("sslmode", "verify-full"), ("sslrootcert", "/etc/pg/ca.crt")]
    assert check_sslrootcert("") is None and check_sslrootcert(None) is None
    with pytest.raises(PgreplError, match=r"sslrootcert: 'ca.crt' is not an absolute path"):
        check_sslrootcert("ca.crt")


def test_every_module_connection_takes_the_same_tls_keywords() -> None:
    ca = "/etc/postgresql/17/main/pgrepl-tls/ca.crt"
    clone = request_from_params({"data_dir": "/var/lib/postgresql/17/main", "primary_host": "10.0.0.5",
                                 "passfile": "/var/lib/postgresql/.pgpass", "sslmode": "verify-full",
                                 "sslrootcert": ca})
    assert ("sslmode", "verify-full") in conninfo_pairs(clone) and ("sslrootcert", ca) in conninfo_pairs(clone)
    assert "sslrootcert" not in dict(conninfo_pairs(request_from_params(
        {"data_dir": "/var/lib/postgresql/17/main", "primary_host": "10.0.0.5",
         "passfile": "/var/lib/postgresql/.pgpass"})))
    rewind = rewind_request({"data_dir": "/var/lib/postgresql/17/main", "source_host": "10.0.0.5",
                             "source_user": "pgrepl_rewind", "passfile": "/var/lib/postgresql/.pgpass",
                             "sslmode": "verify-full", "sslrootcert": ca})
    assert dict(source_pairs(rewind))["sslrootcert"] == ca
    standby = build_standby_request({"data_dir": "/var/lib/postgresql/17/main", "primary_host": "10.0.0.5",
                                     "sslmode": "verify-full", "sslrootcert": ca,
                                     "passfile": "/var/lib/postgresql/.pgpass"})
    assert "sslmode='verify-full' sslrootcert='/etc/postgresql/17/main/pgrepl-tls/ca.crt'" in standby.conninfo
    assert "password" not in standby.conninfo
    with pytest.raises(PgreplError, match=r"conninfo_options: 'sslrootcert' has its own option, use sslrootcert"):
        build_standby_request({"data_dir": "/d", "primary_host": "h", "conninfo_options": {"sslrootcert": ca}})


def test_tls_files_in_different_directories_are_refused() -> None:
    """A copy or a rewind brings the primary's ssl_*_file settings along: every node keeps its files at one path."""
    problems = problems_of({"db1": node(), "db2": node(layout=RHEL)})
    assert problems == [
        "the nodes keep their TLS files in different directories (db1: /etc/postgresql/17/main/pgrepl-tls, db2: "
        "/var/lib/pgsql/17/pgrepl-tls): a copy or a rewind brings the primary's ssl_cert_file, ssl_key_file and "
        "ssl_ca_file along, with which such a node would not start; set pgrepl_tls_dir to one path for every node "
        "(group_vars/all)"]
    assert problems_of({"db1": node(tls_dir="/etc/pg-tls"), "db2": node(layout=RHEL, tls_dir="/etc/pg-tls")}) == []
    # A node whose layout is unknown (it did not answer) is left out.
    assert problems_of({"db1": node(), "db2": node(layout={})}) == []
