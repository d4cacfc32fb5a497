# auditd runs with the baseline's rules loaded, and a watched change produces a record.
{ self, pkgs, ... }:
pkgs.testers.runNixOSTest {
  name = "msp-auditd";

  nodes.machine = {
    imports = [ self.nixosModules.auditd ];
    msp.auditd.enable = true;
  };

  testScript = ''
    machine.wait_for_unit("auditd.service")
    machine.wait_until_succeeds("auditctl -l | grep -q msp-identity")

    with subtest("every configured rule is loaded in the kernel"):
        rules = machine.succeed("auditctl -l")
        for key in ["msp-identity", "msp-privilege", "msp-sshd", "msp-agent-config", "msp-evidence", "msp-time", "msp-modules", "msp-root-exec"]:
            assert f"key={key}" in rules, f"audit rule {key} not loaded:\n{rules}"

    with subtest("auditing is enabled with the configured backlog"):
        status = machine.succeed("auditctl -s")
        assert "enabled 1" in status, status
        assert "backlog_limit 8192" in status, status

    with subtest("a change to a watched file is recorded"):
        machine.succeed("useradd --no-create-home audit-probe")
        machine.wait_until_succeeds("ausearch --input-logs -k msp-identity | grep -q useradd")
  '';
}
