"""mlflow_server with service_manager=cron: start script, @reboot entry, back after a reboot."""


def test_no_systemd_unit(host):
    assert not host.file("/etc/systemd/system/mlflow-server.service").exists


def test_reboot_entry_installed(host):
    crontab = host.check_output("crontab -l -u root")
    assert "@reboot /usr/local/sbin/mlflow-server-start start" in crontab


def test_server_runs_as_mlflow_without_secrets_in_argv(host):
    pid = host.file("/run/mlflow-server.pid").content_string.strip()
    assert host.check_output(f"ps -o user= -p {pid}").strip() == "mlflow"
    assert "sqlite:" not in host.check_output("ps -eo args")


def test_server_back_after_reboot(host, mlflow_smoke, reboot, health):
    mlflow_smoke("write", "cron")
    reboot()
    health()
    assert mlflow_smoke("read", "cron")["read"]["artifact_bytes"] == 10 * 1024 * 1024
    assert host.run("/usr/local/sbin/mlflow-server-start status").rc == 0
