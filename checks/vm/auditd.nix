# auditd runs with the baseline's rules loaded and locked, and a watched change is recorded.
{ self, pkgs, ... }:
pkgs.testers.runNixOSTest {
  name = "msp-auditd";

  nodes.machine = {
    imports = [ self.nixosModules.auditd ];
    msp.auditd.enable = true;
  };

  testScript = ''
    machine.wait_for_unit("auditd.service")
    machine.wait_until_succeeds("auditctl -l | grep -q key=identity")

    with subtest("every configured rule is loaded in the kernel"):
        rules = machine.succeed("auditctl -l")
        for key in ["identity", "sudoers", "sshd_config", "signing_keys", "time_change", "modules", "privileged"]:
            assert f"key={key}" in rules, f"audit rule {key} not loaded:\n{rules}"

    with subtest("auditing is enabled and locked (baseline audit.audit_enable = lock), with the baseline's backlog"):
        status = machine.succeed("auditctl -s")
        assert "enabled 2" in status, status
        machine.fail("auditctl -D")
        assert "backlog_limit 8192" in status, status

    with subtest("a change to a watched file is recorded"):
        machine.succeed("useradd --no-create-home audit-probe")
        machine.wait_until_succeeds("ausearch --input-logs -k identity | grep -q useradd")
  '';
}
