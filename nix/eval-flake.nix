# The flake's output shape (DESIGN.md 4), checked without nixpkgs: flake.nix's `outputs` is
# called with nixpkgs' real `lib` and a nixpkgs whose packages are never forced. Only names
# and pure helpers are evaluated. Run by scripts/eval-modules.
{ lib }:
let
  flake = import ../flake.nix;
  nixpkgs = {
    lib = lib // {
      nixosSystem = _: throw "eval-flake: nixosSystem is not available without nixpkgs";
    };
    legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (
      system: throw "eval-flake: pkgs for ${system} are not available without nixpkgs"
    );
  };
  self = outputs // {
    lastModifiedDate = "20261122093000";
    outPath = toString ../.;
  };
  outputs = flake.outputs { inherit self nixpkgs; };

  check = name: ok: detail: { inherit name ok detail; };
  names = builtins.attrNames;
  systems = [ "aarch64-linux" "x86_64-linux" ];
in
{
  checks = [
    (check "flake outputs" (
      names outputs == [ "checks" "devShells" "formatter" "lib" "nixosConfigurations" "nixosModules" "overlays" "packages" ]
    ) (names outputs))
    (check "flake systems: x86_64-linux and aarch64-linux" (
      names outputs.packages == systems && names outputs.checks == systems && names outputs.devShells == systems && names outputs.formatter == systems
    ) (names outputs.packages))
    (check "packages: msp-agent, msp-fleet, default, options-doc" (
      names outputs.packages.x86_64-linux == [ "default" "msp-agent" "msp-fleet" "options-doc" ]
    ) (names outputs.packages.x86_64-linux))
    (check "nixosModules: default, agent, baseline, luks-tang, ssh-ca, auditd, hardening, fleet" (
      names outputs.nixosModules == [ "agent" "auditd" "baseline" "default" "fleet" "hardening" "luks-tang" "ssh-ca" ]
      && outputs.nixosModules.fleet == ../modules/fleet.nix
    ) (names outputs.nixosModules))
    (check "nixosConfigurations: one per hosts/ entry" (
      names outputs.nixosConfigurations == names (import ../hosts)
    ) (names outputs.nixosConfigurations))
    (check "checks: agent, baseline logic and eval checks, baseline check, VM tests" (
      lib.all (n: builtins.elem n (names outputs.checks.x86_64-linux)) [
        "msp-agent"
        "baseline-lib"
        "baseline-violation-fails"
        "baseline-exception-expiring-today-passes"
        "baseline-exception-expired-fails"
        "baseline-check"
        "vm-ssh-ca"
        "vm-auditd"
        "vm-agent"
        "vm-fleet"
        "fleet-inventory-lib"
      ]
    ) (names outputs.checks.x86_64-linux))
    (check "lib.mspFleetInventory is the inventory function of modules/lib/fleet-inventory.nix" (
      outputs.lib.mspFleetInventory { nixosConfigurations = { }; } == { version = 1; clients = [ ]; }
      && outputs.lib.mspFleetInventory { nixosConfigurations.h.config = { networking.hostName = "h"; services.msp-agent = { enable = true; clientId = "c"; }; }; }
        == { version = 1; clients = [ { id = "c"; hosts = [ { id = "h"; heartbeat_interval_seconds = 900; keys = [ ]; } ]; } ]; }
    ) (builtins.attrNames outputs.lib))
    (check "overlay: msp-agent and msp-fleet" (
      names (outputs.overlays.default { callPackage = _: args: args; } { }) == [ "msp-agent" "msp-fleet" ]
      && (outputs.overlays.default { callPackage = _: args: args; } { }).msp-fleet == { program = "msp-fleet"; }
    ) { })
    (check "lib.dateOf gives the flake's commit date" (
      outputs.lib.dateOf self == "2026-11-22" && outputs.lib.dateOf { } == null
    ) (outputs.lib.dateOf self))
  ];
}
