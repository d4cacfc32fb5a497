# The agent starts (sd_notify READY), a crashed service is repaired by RB-SERVICE-001, and the
# evidence bundle it writes verifies with the stock tools an auditor uses.
{ self, pkgs, ... }:
pkgs.testers.runNixOSTest {
  name = "msp-agent";

  nodes.machine =
    { lib, ... }:
    {
      imports = [ self.nixosModules.agent ];
      services.msp-agent = {
        enable = true;
        clientId = "clinic-test";
        signingKeyFile = "/etc/msp/signing-keys/evidence-signing.key";
        settings.guard.cooldown_seconds = 0;
        settings.probes.disk.mounts = [ "/" ];
      };
      # Started by the test after it has made a signing key on the machine (keys never come
      # from the Nix store).
      systemd.services.msp-agent.wantedBy = lib.mkForce [ ];

      # The clinic application the agent must keep running.
      systemd.services.clinic-app = {
        wantedBy = [ "multi-user.target" ];
        serviceConfig = {
          ExecStart = "${pkgs.python3}/bin/python3 -m http.server 8080 --bind 127.0.0.1";
          Restart = "no";
        };
      };
      environment.systemPackages = [
        pkgs.openssl
        pkgs.openssh
        pkgs.jq
      ];
    };

  testScript = ''
    machine.wait_for_unit("multi-user.target")
    machine.wait_for_unit("clinic-app.service")

    with subtest("the agent starts with a key from the host, passed as a credential"):
        machine.succeed("msp-agent key generate --out /etc/msp/signing-keys")
        machine.succeed("test \"$(stat -c %a /etc/msp/signing-keys/evidence-signing.key)\" = 400")
        machine.systemctl("start msp-agent.service")
        # Type=notify: active only once the agent has sent READY=1.
        machine.wait_for_unit("msp-agent.service")
        machine.succeed("grep -q 'client_id: clinic-test' /etc/msp/agent.yaml")

    with subtest("a crashed service is repaired"):
        machine.succeed("systemctl kill --signal=KILL clinic-app.service")
        machine.wait_until_fails("systemctl is-active clinic-app.service")
        machine.wait_until_succeeds("systemctl is-active clinic-app.service", timeout=120)
        machine.wait_for_open_port(8080)

    with subtest("the evidence verifies with ssh-keygen and openssl"):
        bundle = machine.wait_until_succeeds(
            "find /var/lib/msp/evidence -name 'EB-*.json' | sort | tail -n1 | grep .", timeout=60
        ).strip()
        machine.succeed(f"jq -e '.runbook.runbook_id == \"RB-SERVICE-001\" and .client_id == \"clinic-test\"' {bundle}")
        machine.succeed(
            "ssh-keygen -Y verify -f /etc/msp/signing-keys/allowed_signers -I msp-evidence "
            f"-n msp-evidence -s {bundle}.sshsig < {bundle}"
        )
        machine.succeed(
            "openssl pkeyutl -verify -pubin -inkey /etc/msp/signing-keys/evidence-signing.pub.pem "
            f"-rawin -in {bundle} -sigfile {bundle}.sig"
        )
        # The runbook the bundle names is the approved one, by hash.
        machine.succeed(
            "approved=$(awk '$1 == \"RB-SERVICE-001:\" {print $2}' /etc/msp/agent.yaml) && "
            f"test -n \"$approved\" && jq -r .runbook.runbook_hash {bundle} | grep -F \"$approved\""
        )
        # A flipped byte no longer verifies: the check above can fail.
        machine.succeed(f"cp {bundle} /tmp/tampered.json && sed -i 's/clinic-test/clinic-tesT/' /tmp/tampered.json")
        machine.fail(
            "ssh-keygen -Y verify -f /etc/msp/signing-keys/allowed_signers -I msp-evidence "
            f"-n msp-evidence -s {bundle}.sshsig < /tmp/tampered.json"
        )

    with subtest("the watchdog is armed"):
        out = machine.succeed("systemctl show -p WatchdogUSec msp-agent.service")
        assert "WatchdogUSec=1min" in out, out
  '';
}
