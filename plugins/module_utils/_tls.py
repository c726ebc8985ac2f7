# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""TLS for replication (pgrepl_tls): where a node keeps its certificate files, the server settings that serve them,
the pg_hba connection type, the client options of every connection one node opens to another (the one place that
says sslmode and sslrootcert), the names a node's certificate carries, and the checks of the options, each refusal
naming the option and the value. Decided on the controller (the tls_plan and tls_problems filters).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Any, Callable

from ansible_collections.pgrepl.streaming.plugins.module_utils._address import AddressError, parse_node_address
from ansible_collections.pgrepl.streaming.plugins.module_utils._errors import PgreplError

# The directory of a node's files, and their names in it.
TLS_DIR_NAME = "pgrepl-tls"
CA_NAME = "ca.crt"
CERT_NAME = "server.crt"
KEY_NAME = "server.key"
# What pgrepl_tls_sslmode may be: verify-full checks the CA and the server's name, verify-ca only the CA.
SSLMODES = ("verify-full", "verify-ca")
# libpq matches an IP address against a certificate's iPAddress SANs from PostgreSQL 15 on (commit c1932e5,
# "libpq: Allow IP address SANs in server certificates"); before, verify-full to an IP host fails on such a
# certificate.
IP_SAN_LIBPQ = 150000
# Without TLS: what the modules use by default (the server decides).
PLAIN_CLIENT = {"sslmode": "prefer", "sslrootcert": ""}
_FILE_SAFE_RE = re.compile(r"[^A-Za-z0-9._-]")


class TlsError(PgreplError):
    """A refused TLS option; the message names the option and the value."""


def _text(option: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str):
        raise TlsError(f"{option}: {value!r} is a {type(value).__name__}, a path is expected")
    if "\x00" in value or "\n" in value or "\r" in value:
        raise TlsError(f"{option}: {value!r} contains a line break or NUL, which a path cannot hold here")
    return value.strip()


def _absolute(option: str, value: str) -> str:
    if value and not posixpath.isabs(value):
        raise TlsError(f"{option}: {value!r} is not an absolute path")
    return posixpath.normpath(value) if value else ""


def node_tls_dir(layout: Mapping[str, Any], option: Any = "") -> str:
    """Where a node keeps its CA, certificate and key: pgrepl_tls_dir, else pgrepl-tls in the configuration
    directory when that is outside the data directory (Debian), else pgrepl-tls beside the data directory (RHEL,
    custom layouts): pg_basebackup copies every file inside the data directory, which would give each standby the
    primary's certificate and key."""
    given = _absolute("pgrepl_tls_dir", _text("pgrepl_tls_dir", option))
    data_dir = posixpath.normpath(str(layout.get("data_dir") or ""))
    if given:
        if data_dir and (given == data_dir or given.startswith(data_dir.rstrip("/") + "/")):
            raise TlsError(f"pgrepl_tls_dir: {given!r} is inside the data directory {data_dir!r}, which "
                           "pg_basebackup copies onto the standbys (each needs its own certificate and key)")
        return given
    config_dir = posixpath.normpath(str(layout.get("config_dir") or data_dir))
    if data_dir and (config_dir == data_dir or config_dir.startswith(data_dir.rstrip("/") + "/")):
        return posixpath.join(posixpath.dirname(data_dir), TLS_DIR_NAME)
    return posixpath.join(config_dir, TLS_DIR_NAME)


def certificate_names(host: str, address: str) -> list[str]:
    """The subjectAltNames of a node's certificate, as community.crypto takes them: its inventory name and its
    address (IP: for an IP address, DNS: for a name), each once."""
    names: list[str] = []
    for value in (host, address):
        value = str(value or "").strip()
        if not value:
            continue
        try:
            parsed = parse_node_address(value)
        except AddressError:
            # An inventory name that is no DNS name (a label with '_') still names the host for the user.
            entry = f"DNS:{value}"
        else:
            # A link-local address's zone is the connecting host's interface, not part of the address.
            entry = f"DNS:{parsed.host}" if parsed.is_name else f"IP:{parsed.ip}"
        if entry not in names:
            names.append(entry)
    return names


def file_label(host: str) -> str:
    """A host's inventory name as a file name in the controller's CA directory."""
    return _FILE_SAFE_RE.sub("_", host) or "_"


def read_pem(option: str, path: str, kinds: tuple[str, ...],
             reader: Callable[[str], str] | None = None) -> None:
    """The file exists on the controller, is readable and holds a PEM block of one of these kinds; TlsError naming
    the option and the path otherwise."""
    def read(name: str) -> str:
        with open(name, encoding="ascii", errors="replace") as handle:
            return handle.read()

    try:
        text = (reader or read)(path)
    except OSError as exc:
        raise TlsError(f"{option}: {path!r} cannot be read on the controller ({exc.strerror or exc})") from None
    if "-----BEGIN ENCRYPTED PRIVATE KEY-----" in text or "Proc-Type: 4,ENCRYPTED" in text:
        raise TlsError(f"{option}: {path!r} is an encrypted private key, which the server cannot read at a reload "
                       "without a passphrase command: give it unencrypted (the role installs it 0600 for the "
                       "server's OS user)")
    if not any(f"-----BEGIN {kind}-----" in text for kind in kinds):
        raise TlsError(f"{option}: {path!r} holds no PEM block of a {' or '.join(kinds)}")


CERT_KINDS = ("CERTIFICATE",)
KEY_KINDS = ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY")


def check_options(host: str, sslmode: Any = "verify-full", ca_cert: Any = "", cert: Any = "", key: Any = "",
                  reader: Callable[[str], str] | None = None) -> tuple[str, str, str, str]:
    """(sslmode, ca_cert, cert, key) checked: a known sslmode, absolute paths, your own files as a set, each one
    readable on the controller and holding a PEM block of its kind; TlsError naming the host, option and value."""
    mode = sslmode if sslmode not in (None, "") else "verify-full"
    if mode not in SSLMODES:
        raise TlsError(f"{host}: pgrepl_tls_sslmode: {mode!r} is not one of {', '.join(SSLMODES)}")
    try:
        ca_cert = _absolute("pgrepl_tls_ca_cert", _text("pgrepl_tls_ca_cert", ca_cert))
        cert = _absolute("pgrepl_tls_cert", _text("pgrepl_tls_cert", cert))
        key = _absolute("pgrepl_tls_key", _text("pgrepl_tls_key", key))
    except TlsError as exc:
        raise TlsError(f"{host}: {exc}") from None
    check_combination(host, ca_cert, cert, key)
    if ca_cert:
        try:
            read_pem("pgrepl_tls_ca_cert", ca_cert, CERT_KINDS, reader)
            read_pem("pgrepl_tls_cert", cert, CERT_KINDS, reader)
            read_pem("pgrepl_tls_key", key, KEY_KINDS, reader)
        except TlsError as exc:
            raise TlsError(f"{host}: {exc}") from None
    return mode, ca_cert, cert, key


def tls_plan(enabled: bool, host: str, address: str, layout: Mapping[str, Any] | None, tls_dir: Any = "",
             ca_cert: Any = "", cert: Any = "", key: Any = "", ca_dir: Any = "", sslmode: Any = "verify-full",
             reader: Callable[[str], str] | None = None) -> dict[str, Any]:
    """What pgrepl_tls and its options make of one node: its files (on the node, and where they come from on the
    controller), its server settings, its pg_hba connection type (and the one it replaces), and the client options
    of the connections it opens to the other nodes. Every option checked (the user's files read on the
    controller); TlsError naming the option and the value."""
    if not enabled:
        return {"enabled": False, "hba_contype": "host", "hba_replaced": "hostssl", "settings": {},
                "client": dict(PLAIN_CLIENT)}
    mode, ca_cert, cert, key = check_options(host, sslmode, ca_cert, cert, key, reader)
    own = bool(ca_cert)
    label = file_label(host)
    local = ""
    if own:
        sources = {"ca": ca_cert, "cert": cert, "key": key}
    else:
        local = _absolute("pgrepl_tls_ca_dir", _text("pgrepl_tls_ca_dir", ca_dir))
        if not local:
            raise TlsError("pgrepl_tls_ca_dir: is empty; the role needs a directory on the controller for the CA it "
                           "makes (or bring your own: pgrepl_tls_ca_cert, pgrepl_tls_cert, pgrepl_tls_key)")
        sources = {"ca": posixpath.join(local, "ca.crt"), "cert": posixpath.join(local, f"{label}.crt"),
                   "key": posixpath.join(local, f"{label}.key")}
    directory = node_tls_dir(layout or {}, tls_dir)
    files = {"ca": posixpath.join(directory, CA_NAME), "cert": posixpath.join(directory, CERT_NAME),
             "key": posixpath.join(directory, KEY_NAME)}
    return {
        "enabled": True,
        "own": own,
        "dir": directory,
        "files": files,
        "sources": sources,
        # The role-made CA (own: false): its key and certificate, this node's CSR, on the controller.
        "ca_dir": local,
        "ca_key": posixpath.join(local, "ca.key") if local else "",
        "csr": posixpath.join(local, f"{label}.csr") if local else "",
        "names": certificate_names(host, address),
        "settings": {"ssl": "on", "ssl_ca_file": files["ca"], "ssl_cert_file": files["cert"],
                     "ssl_key_file": files["key"]},
        "hba_contype": "hostssl",
        "hba_replaced": "host",
        "client": {"sslmode": mode, "sslrootcert": files["ca"]},
    }


def check_combination(host: str, ca_cert: str, cert: str, key: str) -> None:
    """Your own files come as a set (the CA, this host's certificate and its key), or none of them does (the role
    makes a CA and signs every node's certificate)."""
    if bool(cert) != bool(key):
        given, missing = ("pgrepl_tls_cert", "pgrepl_tls_key") if cert else ("pgrepl_tls_key", "pgrepl_tls_cert")
        raise TlsError(f"{host}: {given} is set ({cert or key!r}) but {missing} is not: give this host's certificate "
                       "and its private key together, or neither (the role then makes them)")
    if ca_cert and not cert:
        raise TlsError(f"{host}: pgrepl_tls_ca_cert is set ({ca_cert!r}) but this host has no pgrepl_tls_cert and "
                       "pgrepl_tls_key: with your own CA every node needs its certificate signed by it (the role signs "
                       "only with the CA it makes itself, when pgrepl_tls_ca_cert is empty)")
    if cert and not ca_cert:
        raise TlsError(f"{host}: pgrepl_tls_cert is set ({cert!r}) but pgrepl_tls_ca_cert is not: the other nodes "
                       "verify this host's certificate with the CA that signed it, so give that CA too")


def libpq_matches_ip(libpq_version: Any, major: Any) -> bool:
    """Whether a node's connections can verify an IP address against a certificate's IP SAN: its libpq (the one
    the WAL receiver, pg_basebackup and pg_rewind load) and its PostgreSQL major (RHEL's PGDG binaries use their
    own major's libpq) both 15 or later. Unknown counts as able."""
    versions = []
    if isinstance(libpq_version, int) and not isinstance(libpq_version, bool) and libpq_version > 0:
        versions.append(libpq_version)
    if isinstance(major, int) and not isinstance(major, bool) and major > 0:
        versions.append(major * 10000)
    return all(version >= IP_SAN_LIBPQ for version in versions)


def _version_text(libpq_version: Any, major: Any) -> str:
    parts = []
    if isinstance(libpq_version, int) and libpq_version > 0:
        parts.append(f"libpq {libpq_version // 10000}")
    if isinstance(major, int) and major > 0:
        parts.append(f"PostgreSQL {major}")
    return ", ".join(parts) or "an unknown libpq"


def tls_problems(nodes: Mapping[str, Mapping[str, Any]], crypto_available: bool = True,
                 reader: Callable[[str], str] | None = None) -> list[str]:
    """Every reason the cluster's TLS options cannot work, each naming the host, the option and the value:
    pgrepl_tls not the same on every node, not the same CA everywhere, a node whose connections would check an IP
    address with verify-full on a libpq before 15, the role's CA without community.crypto on the controller, and
    each node's own options (check_options, node_tls_dir).

    ``nodes``: inventory name -> {tls, address, ca_cert, cert, key, sslmode, tls_dir, layout, libpq_version,
    major}."""
    problems: list[str] = []
    enabled = {name: bool(node.get("tls")) for name, node in nodes.items()}
    if len(set(enabled.values())) > 1:
        on = sorted(name for name, value in enabled.items() if value)
        off = sorted(name for name, value in enabled.items() if not value)
        problems.append(f"pgrepl_tls is true on {', '.join(on)} but false on {', '.join(off)}: set it for every "
                        "node alike (group_vars/all), a node without TLS could not reach the others")
        return problems
    if not any(enabled.values()):
        return problems
    dirs: dict[str, str] = {}
    for name, node in nodes.items():
        try:
            check_options(name, node.get("sslmode"), node.get("ca_cert"), node.get("cert"), node.get("key"), reader)
            if (node.get("layout") or {}).get("data_dir") or node.get("tls_dir"):
                dirs[name] = node_tls_dir(node.get("layout") or {}, node.get("tls_dir"))
        except TlsError as exc:
            problems.append(str(exc) if str(exc).startswith(f"{name}: ") else f"{name}: {exc}")
    if len(set(dirs.values())) > 1:
        # The primary's postgresql.auto.conf (ssl_cert_file & co) comes over with pg_basebackup and pg_rewind: a
        # node whose files are elsewhere would not start with it.
        problems.append("the nodes keep their TLS files in different directories (" + ", ".join(
            f"{name}: {path}" for name, path in dirs.items()) + "): a copy or a rewind brings the primary's "
            "ssl_cert_file, ssl_key_file and ssl_ca_file along, with which such a node would not start; set "
            "pgrepl_tls_dir to one path for every node (group_vars/all)")
    cas = {str(node.get("ca_cert") or "").strip() for node in nodes.values()}
    if len(cas) > 1:
        problems.append("pgrepl_tls_ca_cert differs between the nodes (" + ", ".join(
            f"{name}: {str(node.get('ca_cert') or '')!r}" for name, node in nodes.items())
            + "): every node verifies the others with one CA, set it once (group_vars/all)")
    if cas == {""} and not crypto_available:
        problems.append("pgrepl_tls: true without your own certificates (pgrepl_tls_ca_cert empty) makes a CA on the "
                        "controller with the community.crypto collection, which this controller does not have: "
                        "install it (ansible-galaxy collection install community.crypto, or the full ansible "
                        "package; its modules need the Python library cryptography), or bring your own CA, "
                        "certificates and keys")
    for name, node in nodes.items():
        full = (node.get("sslmode") or "verify-full") == "verify-full"
        if not full or libpq_matches_ip(node.get("libpq_version"), node.get("major")):
            continue
        for peer, other in nodes.items():
            if peer == name:
                continue
            try:
                parsed = parse_node_address(other.get("address"))
            except AddressError:
                continue
            if not parsed.is_name:
                problems.append(
                    f"{name} ({_version_text(node.get('libpq_version'), node.get('major'))}) would connect to "
                    f"{peer} at {parsed.host} with sslmode=verify-full, but libpq before 15 cannot match an IP "
                    f"address against a certificate: give {peer} a DNS name in pgrepl_address, or set "
                    "pgrepl_tls_sslmode: verify-ca (the CA is verified, not the name)")
    return problems


def crypto_available() -> bool:
    """Whether this controller has community.crypto and the cryptography library its modules need."""
    import importlib.util  # pylint: disable=import-outside-toplevel

    try:
        return (importlib.util.find_spec("ansible_collections.community.crypto.plugins") is not None
                and importlib.util.find_spec("cryptography") is not None)
    except (ImportError, ValueError):
        return False


def libpq_version() -> int | None:
    """PQlibVersion() of the libpq the host's dynamic loader finds (the one its WAL receiver, pg_basebackup and
    pg_rewind load on Debian), such as 170004; None where there is none."""
    import ctypes  # pylint: disable=import-outside-toplevel

    for name in ("libpq.so.5", "libpq.so"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        try:
            return int(lib.PQlibVersion())
        except (AttributeError, ValueError):
            return None
    return None
