# The fleet view on NixOS: an agent on the same machine writes real signed evidence, the test
# mirrors it in the bucket's layout (PREFIX/CLIENT/HOST/YYYY/MM/FILE), and services.msp-fleet
# (local-mirror source) starts with its config checked first, answers /healthz on loopback
# only, refuses pages and API calls without a token, indexes the host, and `msp-fleet status`
# reports it. Needs KVM and a binary cache (`nix flake check`); it cannot run on the CI machine.
{ self, pkgs, ... }:
let
  # A throwaway login token for the test (the file holds only its SHA-256).
  token = "fleet-vm-test-operator-token";
in
pkgs.testers.runNixOSTest {
  name = "msp-fleet";

  nodes.machine =
    { lib, ... }:
    {
      imports = [
        self.nixosModules.agent
        self.nixosModules.fleet
      ];

      # The agent, only to make real evidence for the fleet to index.
      services.msp-agent = {
        enable = true;
        clientId = "clinic-test";
        signingKeyFile = "/etc/msp/signing-keys/evidence-signing.key";
      };
      systemd.services.msp-agent.wantedBy = lib.mkForce [ ];

      services.msp-fleet = {
        enable = true;
        # A mirror of the bucket and an inventory the test writes at run time (the host's key
        # is made on the machine, so its key_dir is only known then).
        settings.source.local = "/srv/mirror";
        inventory = "/var/lib/fleet-test/inventory.json";
        tokensFile = "/etc/msp-fleet/tokens";
        settings.poll_interval_seconds = 5;
      };
      # Started by the test once the mirror and the inventory exist.
      systemd.services.msp-fleet.wantedBy = lib.mkForce [ ];

      environment.systemPackages = [
        pkgs.curl
        pkgs.jq
      ];
    };

  testScript = ''
    import json

    token = "${token}"
    auth = f"-H 'Authorization: Bearer {token}'"
    base = "http://127.0.0.1:8427"

    machine.wait_for_unit("multi-user.target")

    with subtest("an agent's signed evidence, mirrored in the bucket's layout"):
        machine.succeed("msp-agent key generate --out /etc/msp/signing-keys")
        machine.systemctl("start msp-agent.service")
        machine.wait_for_unit("msp-agent.service")
        machine.wait_until_succeeds(
            "find /var/lib/msp/evidence -path '*/20*/*' -name '*.json' | grep -q .", timeout=60
        )
        machine.succeed(
            "mkdir -p /srv/mirror/msp-evidence/clinic-test/machine /var/lib/fleet-test/keys/archive",
            # The month directories only (YYYY/MM/FILE), as the uploader's object keys have them.
            "cp -r /var/lib/msp/evidence/20* /srv/mirror/msp-evidence/clinic-test/machine/",
            # Public key files only: never the private key.
            "cp /etc/msp/signing-keys/key-info.json /var/lib/fleet-test/keys/",
            "if [ -d /etc/msp/signing-keys/archive ]; then cp -r /etc/msp/signing-keys/archive/. /var/lib/fleet-test/keys/archive/; fi",
            "! grep -rl 'PRIVATE KEY' /var/lib/fleet-test /srv/mirror",
        )
        inventory = {
            "version": 1,
            "clients": [{"id": "clinic-test", "hosts": [
                {"id": "machine", "heartbeat_interval_seconds": 900, "key_dir": "keys"}
            ]}],
        }
        machine.succeed(f"echo {json.dumps(json.dumps(inventory))} > /var/lib/fleet-test/inventory.json")
        # The service runs as a dynamic user: the mirror and inventory are world-readable.
        machine.succeed("chmod -R a+rX /srv/mirror /var/lib/fleet-test")
        machine.succeed(
            "install -d -m 0700 /etc/msp-fleet",
            f"printf 'operator %s\\n' \"$(printf %s {token} | sha256sum | cut -d' ' -f1)\" > /etc/msp-fleet/tokens",
            "chmod 0400 /etc/msp-fleet/tokens",
        )

    with subtest("the service starts, its config checked first"):
        machine.systemctl("start msp-fleet.service")
        machine.wait_for_unit("msp-fleet.service")
        machine.wait_for_open_port(8427)
        machine.succeed("journalctl -u msp-fleet.service -b | grep -F 'fleet.yaml: ok'")

    with subtest("/healthz answers on loopback, and the port is bound to loopback only"):
        assert machine.succeed(f"curl -sf {base}/healthz").strip() == "ok"
        # The local-address column of every listening socket on the port.
        listening = machine.succeed("ss -Hltn 'sport = :8427' | awk '{print $4}'").split()
        assert listening == ["127.0.0.1:8427"], listening

    with subtest("pages and the API are refused without a token"):
        code = machine.succeed(f"curl -s -o /dev/null -w '%{{http_code}} %{{redirect_url}}' {base}/")
        assert code.startswith("303 ") and "/login" in code, code
        assert machine.succeed(f"curl -s -o /dev/null -w '%{{http_code}}' {base}/api/v1/fleet") == "401"
        assert machine.succeed(
            f"curl -s -o /dev/null -w '%{{http_code}}' -H 'Authorization: Bearer wrong' {base}/api/v1/fleet"
        ) == "401"
        machine.fail(f"curl -s {base}/api/v1/fleet | grep -q clinic-test")

    with subtest("with the token, the host's evidence is indexed"):
        machine.wait_until_succeeds(f"curl -sf {auth} {base}/api/v1/fleet | grep -q machine", timeout=90)
        machine.succeed(f"curl -sf {auth} {base}/api/v1/fleet | jq -e . > /dev/null")

    with subtest("the sandbox: dynamic user, private state directory, no capabilities"):
        show = machine.succeed(
            "systemctl show -p DynamicUser -p ProtectSystem -p NoNewPrivileges -p PrivateDevices "
            "-p MemoryDenyWriteExecute -p CapabilityBoundingSet -p UMask msp-fleet.service"
        )
        for want in ["DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes",
                     "PrivateDevices=yes", "MemoryDenyWriteExecute=yes", "UMask=0077"]:
            assert want in show, show
        assert "CapabilityBoundingSet=" in show.splitlines(), show
        machine.succeed("test \"$(stat -c %a /var/lib/private/msp-fleet)\" = 700")
        machine.succeed("test -f /var/lib/private/msp-fleet/index.sqlite")

    with subtest("status works"):
        # The server holds the index; status reads it once the server is stopped.
        machine.systemctl("stop msp-fleet.service")
        rc, out = machine.execute("msp-fleet status --config /etc/msp-fleet/fleet.yaml --json")
        assert rc in (0, 1), f"status exited {rc}: {out}"
        report = json.loads(out)
        assert "clinic-test" in json.dumps(report), out
  '';
}
