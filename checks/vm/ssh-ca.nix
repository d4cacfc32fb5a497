# sshd refuses passwords and accepts only a key certified by the MSP user CA for a principal
# the account allows.
{ self, pkgs, ... }:
let
  keys = import ./test-keys.nix { inherit pkgs; };
in
pkgs.testers.runNixOSTest {
  name = "msp-ssh-ca";

  nodes.server = {
    imports = [ self.nixosModules.ssh-ca ];
    msp.sshCa = {
      enable = true;
      # A path into the keys derivation, read when the system is built: no import from
      # derivation (`nix flake check --no-allow-import-from-derivation`, Hydra).
      userCaKeyFiles = [ "${keys}/ca.pub" ];
      principals.alice = [ "msp-oncall" ];
    };
    users.users.alice = {
      isNormalUser = true;
      # A real password exists, so "refused" means sshd refuses password logins, not that
      # the account has none.
      password = "correct horse battery staple";
    };
  };

  nodes.client = {
    environment.systemPackages = [ pkgs.sshpass ];
  };

  testScript = ''
    start_all()
    server.wait_for_open_port(22)
    client.wait_for_unit("multi-user.target")

    for k in ["alice", "alice-cert.pub", "mallory", "mallory-cert.pub", "stranger", "stranger-cert.pub"]:
        client.succeed(f"install -m 0600 ${keys}/{k} /root/{k}")
    # The same private key with no certificate beside it (ssh loads KEY-cert.pub automatically).
    client.succeed("install -d -m 0700 /root/nocert && install -m 0600 ${keys}/alice /root/nocert/alice")
    ssh = "ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=10"

    with subtest("password and keyboard-interactive are not offered"):
        out = client.fail(f"{ssh} -o PubkeyAuthentication=no alice@server true 2>&1")
        assert "Permission denied (publickey)" in out, out
        out = client.fail(
            "sshpass -p 'correct horse battery staple' ssh -o StrictHostKeyChecking=no "
            "-o UserKnownHostsFile=/dev/null -o PubkeyAuthentication=no "
            "-o PreferredAuthentications=password,keyboard-interactive alice@server true 2>&1"
        )
        assert "Permission denied" in out, out

    with subtest("a certificate from the MSP CA for an allowed principal is accepted"):
        out = client.succeed(f"{ssh} -i /root/alice -o CertificateFile=/root/alice-cert.pub alice@server id -un")
        assert out.strip() == "alice", out
        # LogLevel VERBOSE: the login is logged with the certificate's key id.
        server.wait_until_succeeds("journalctl --no-pager | grep -F 'ID alice@msp'")

    with subtest("the same key without its certificate is refused"):
        client.fail(f"{ssh} -o IdentitiesOnly=yes -i /root/nocert/alice alice@server true")

    with subtest("a certificate for a principal the account does not allow is refused"):
        client.fail(f"{ssh} -i /root/mallory -o CertificateFile=/root/mallory-cert.pub alice@server true")

    with subtest("a certificate from another CA is refused"):
        client.fail(f"{ssh} -i /root/stranger -o CertificateFile=/root/stranger-cert.pub alice@server true")

    with subtest("root cannot log in even with an allowed certificate"):
        client.fail(f"{ssh} -i /root/alice -o CertificateFile=/root/alice-cert.pub root@server true")
  '';
}
