# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of node_prepare's layout options (where a host keeps PostgreSQL)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  version:
    description: PostgreSQL major to manage. Default is the newest installed.
    type: int
  cluster_name:
    description: Debian cluster name (the C(main) of C(/etc/postgresql/15/main)).
    type: str
    default: main
  data_dir:
    description: Data directory. Default from the layout (Debian reads C(data_directory) from postgresql.conf).
    type: path
  config_dir:
    description: Directory of postgresql.conf and pg_hba.conf. Default C(/etc/postgresql/N/cluster) on Debian,
      the data directory elsewhere.
    type: path
  bin_dir:
    description: Directory of the server binaries.
    type: path
  service:
    description: systemd unit of the server. Default C(postgresql@N-cluster) on Debian, C(postgresql-N) elsewhere.
    type: str
  socket_dir:
    description: Unix socket directory of the server.
    type: path
  port:
    description: Port of the server. Default from postgresql.auto.conf, then postgresql.conf, then 5432.
    type: int
  os_user:
    description: OS user the server runs as.
    type: str
    default: postgres
"""
