# Every msp-flake NixOS module; `nixosModules.default` in flake.nix. Each module does nothing
# until its `enable` option is set, so importing this is safe on any host.
{
  imports = [
    ./agent.nix
    ./baseline.nix
    ./luks-tang.nix
    ./ssh-ca.nix
    ./auditd.nix
    ./hardening.nix
    # The MSP's fleet view; off unless enabled (it belongs on the MSP's machine, not a clinic's).
    ./fleet.nix
  ];
}
