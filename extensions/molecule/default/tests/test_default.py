def test_postgres_runs(host):
    assert host.service("postgresql").is_enabled
