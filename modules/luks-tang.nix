# msp.luksTang: LUKS-encrypted disks unlocked at boot by Clevis with Tang servers (network-bound
# disk encryption), in a systemd initrd with networking. A server stolen from the clinic
# without its network cannot unlock its disks (HIPAA §164.312(a)(2)(iv), §164.310(d)(1)).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.msp.luksTang;
  # The baseline's encryption.tang_min_servers (enforced here: it has no single NixOS option).
  minServers = (import ../baseline/rendered/baseline.nix).rules.encryption.tang_min_servers.value;

  # The Clevis pin policy for `clevis encrypt sss`: any one of the Tang servers (threshold t)
  # unlocks, so one Tang server being down does not keep the clinic's server from booting.
  pinConfig = builtins.toJSON {
    t = cfg.threshold;
    pins.tang = map (url: { inherit url; }) cfg.tangServers;
  };

  bindHelper = pkgs.writeShellScriptBin "msp-clevis-bind" ''
    # Write the Clevis JWE the initrd uses to unlock a LUKS device with this host's Tang servers.
    # Usage: msp-clevis-bind LUKS-NAME   (run as root on the host, with the LUKS passphrase at hand)
    set -euo pipefail
    case "''${1:-}" in
    ${lib.concatStrings (
      lib.mapAttrsToList (name: dev: ''
        ${lib.escapeShellArg name})
          device=${lib.escapeShellArg dev.device}; jwe=${lib.escapeShellArg dev.jweFile} ;;
      '') cfg.devices
    )}
      *) echo "usage: msp-clevis-bind {${lib.concatStringsSep "|" (builtins.attrNames cfg.devices)}}" >&2; exit 2 ;;
    esac
    umask 077
    mkdir -p "$(dirname "$jwe")"
    # The JWE holds the LUKS passphrase encrypted to the Tang policy (the NixOS clevis module's
    # format); the initrd decrypts it with the Tang servers and unlocks $device with it.
    read -rsp "LUKS passphrase of $device: " pass; echo >&2
    printf '%s' "$pass" | ${pkgs.clevis}/bin/clevis encrypt sss ${lib.escapeShellArg pinConfig} > "$jwe"
    echo "wrote $jwe; now nixos-rebuild switch (or boot) puts it in the initrd" >&2
  '';

  # Before anything is switched (and so before the boot loader install copies the initrd
  # secrets, where a missing JWE fails with a bare "cannot copy" error), every JWE must exist.
  enrolmentCheck = lib.concatStrings (
    lib.mapAttrsToList (name: dev: ''
      if [ ! -s ${lib.escapeShellArg dev.jweFile} ]; then
        echo "msp.luksTang: ${dev.jweFile} (the Clevis JWE for LUKS device ${name}) does not exist yet, so the initrd could not unlock ${dev.device}." >&2
        echo "  Enrol first, as root on this host (LUKS passphrase at hand; docs: README, 'Enrolling a disk with Tang'):" >&2
        echo "    nix build .#nixosConfigurations.<host>.config.system.build.mspClevisBind && sudo ./result/bin/msp-clevis-bind ${name}" >&2
        echo "  then run nixos-rebuild again." >&2
        exit 1
      fi
    '') cfg.devices
  );
in
{
  options.msp.luksTang = {
    enable = lib.mkEnableOption "LUKS disks unlocked by Clevis/Tang in a systemd initrd";

    tangServers = lib.mkOption {
      type = lib.types.nonEmptyListOf (lib.types.strMatching "https?://.+");
      example = [
        "http://tang1.clinic.internal"
        "http://tang2.clinic.internal"
      ];
      description = "Tang servers the disks are bound to (the JWE files record them too).";
    };

    threshold = lib.mkOption {
      type = lib.types.ints.positive;
      default = 1;
      description = "How many of the Tang servers must answer to unlock (Shamir threshold).";
    };

    devices = lib.mkOption {
      description = "LUKS devices, by the name they get under /dev/mapper.";
      default = { };
      type = lib.types.attrsOf (
        lib.types.submodule (
          { name, ... }:
          {
            options = {
              device = lib.mkOption {
                type = lib.types.str;
                example = "/dev/disk/by-uuid/0f7c1b52-54a8-4a37-9b2c-2f0e2c1c9a11";
                description = "The encrypted block device.";
              };
              jweFile = lib.mkOption {
                type = lib.types.str;
                default = "/var/lib/msp/clevis/${name}.jwe";
                description = ''
                  Clevis JWE (from `msp-clevis-bind ${name}`) that the initrd decrypts with the
                  Tang servers. An absolute path on the host, read when the boot loader is
                  installed (initrd secrets), so it is not copied into the Nix store.
                '';
              };
              allowDiscards = lib.mkOption {
                type = lib.types.bool;
                default = false;
                description = "Pass TRIM through (leaks which blocks are in use; off by default).";
              };
            };
          }
        )
      );
    };

    network = {
      interfaces = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [
          "en*"
          "eth*"
        ];
        description = "Interface name patterns brought up with DHCP in the initrd to reach Tang.";
      };
      kernelModules = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [ ];
        example = [
          "e1000e"
          "igb"
          "virtio_net"
        ];
        description = "NIC drivers the initrd needs to reach the Tang servers.";
      };
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.devices != { };
        message = "msp.luksTang.enable is set but msp.luksTang.devices is empty.";
      }
      {
        assertion = config.boot.initrd.systemd.enable;
        message = "msp.luksTang needs the systemd initrd (boot.initrd.systemd.enable = true).";
      }
      {
        assertion = builtins.length cfg.tangServers >= minServers;
        message = "msp.luksTang.tangServers lists ${toString (builtins.length cfg.tangServers)} Tang server(s); the baseline (encryption.tang_min_servers, HIPAA §164.312(a)(2)(iv), §164.308(a)(7)(ii)(C)) requires at least ${toString minServers}, so one failed Tang host does not stop the server booting.";
      }
      {
        assertion = cfg.threshold <= builtins.length cfg.tangServers;
        message = "msp.luksTang.threshold (${toString cfg.threshold}) is larger than the number of Tang servers.";
      }
    ];

    boot.initrd.systemd.enable = lib.mkDefault true;

    boot.initrd.luks.devices = lib.mapAttrs (_: dev: {
      inherit (dev) device allowDiscards;
      # Fall back to the passphrase prompt after the network-bound unlock gives up.
      crypttabExtraOpts = [ "tries=3" ];
    }) cfg.devices;

    boot.initrd.clevis = {
      enable = true;
      useTang = true;
      devices = lib.mapAttrs (_: dev: { secretFile = dev.jweFile; }) cfg.devices;
    };

    boot.initrd.availableKernelModules = cfg.network.kernelModules;
    boot.initrd.network.enable = true;
    boot.initrd.systemd.network = {
      enable = true;
      networks."10-msp-tang" = {
        matchConfig.Name = lib.concatStringsSep " " cfg.network.interfaces;
        networkConfig.DHCP = "yes";
      };
    };

    # Enrolment comes before the first switch: the helper can be built from the flake
    # without switching (system.build.mspClevisBind), and the switch refuses, with the
    # commands to run, while a JWE is missing (system.preSwitchChecks, run by
    # switch-to-configuration before the boot loader is installed).
    system.build.mspClevisBind = bindHelper;
    system.preSwitchChecks.msp-luks-tang-enrolled = enrolmentCheck;

    environment.systemPackages = [
      bindHelper
      pkgs.clevis
    ];
  };
}
