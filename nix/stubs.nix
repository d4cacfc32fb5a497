# STAND-IN for the NixOS module system's option declarations, used only by
# scripts/eval-modules and the options-doc generator, where the whole of nixpkgs is not
# available (this CI machine has nixpkgs' `lib` at most). It declares, with the same types as
# nixpkgs 26.05 where that matters, just the NixOS options msp-flake's modules set, and a
# `pkgs` whose builders return placeholder store paths. It catches typos in option names,
# wrong types and broken module logic; it does not build anything, and it is NOT the real
# module system: `nix flake check` on a machine with nixpkgs evaluates the real one.
{ lib }:
let
  inherit (lib) mkOption types;

  fakePath = name: "/nix/store/00000000000000000000000000000000-${name}";
  fakeDrv = name: extra: {
    type = "derivation";
    inherit name;
    outPath = fakePath name;
  } // extra;

  # pkgs.formats.yaml's value type (nixpkgs pkgs/pkgs-lib/formats.nix).
  yamlValue =
    let
      valueType =
        types.nullOr (
          types.oneOf [
            types.bool
            types.int
            types.float
            types.str
            types.path
            (types.attrsOf valueType)
            (types.listOf valueType)
          ]
        )
        // {
          description = "YAML value";
        };
    in
    valueType;

  pkgs = {
    formats.yaml = _: {
      type = yamlValue;
      # `value` kept so tests can inspect exactly what would be rendered.
      generate = name: value: fakeDrv name { inherit value; };
    };
    runCommand = name: _env: script: fakeDrv name { inherit script; };
    writeShellScript = name: text: fakeDrv name { inherit text; };
    writeShellScriptBin = name: text: fakeDrv name { inherit text; };
    callPackage = _fn: _args: fakeDrv "msp-agent-0.1.0" { meta.mainProgram = "msp-agent"; };
    coreutils = fakeDrv "coreutils" { };
    clevis = fakeDrv "clevis" { };
    openssh = fakeDrv "openssh" { };
    audit = fakeDrv "audit" { };
  };

  anyAttrs = mkOption {
    type = types.attrsOf types.anything;
    default = { };
  };

  unitOptions = {
    options = {
      description = mkOption { type = types.str; default = ""; };
      documentation = mkOption { type = types.listOf types.str; default = [ ]; };
      wantedBy = mkOption { type = types.listOf types.str; default = [ ]; };
      wants = mkOption { type = types.listOf types.str; default = [ ]; };
      after = mkOption { type = types.listOf types.str; default = [ ]; };
      restartTriggers = mkOption { type = types.listOf types.unspecified; default = [ ]; };
      restartIfChanged = mkOption { type = types.bool; default = true; };
      serviceConfig = anyAttrs;
      unitConfig = anyAttrs;
      timerConfig = anyAttrs;
      path = mkOption { type = types.listOf types.unspecified; default = [ ]; };
      script = mkOption { type = types.lines; default = ""; };
    };
  };
in
{
  inherit pkgs;

  module =
    { config, ... }:
    {
      # The one piece of nixpkgs behaviour the baseline's assertions depend on here: sshd opens
      # its port in the firewall (services.openssh.openFirewall, default true).
      config.networking.firewall.allowedTCPPorts = lib.mkIf (
        config.services.openssh.enable && config.services.openssh.openFirewall
      ) [ 22 ];

      options = {
        assertions = mkOption {
          type = types.listOf types.unspecified;
          default = [ ];
        };
        warnings = mkOption {
          type = types.listOf types.str;
          default = [ ];
        };

        networking.hostName = mkOption { type = types.str; default = "nixos"; };
        networking.firewall = {
          enable = mkOption { type = types.bool; default = true; };
          allowPing = mkOption { type = types.bool; default = true; };
          logRefusedConnections = mkOption { type = types.bool; default = true; };
          allowedTCPPorts = mkOption { type = types.listOf types.port; default = [ ]; };
          allowedUDPPorts = mkOption { type = types.listOf types.port; default = [ ]; };
        };

        environment.etc = mkOption {
          type = types.attrsOf (
            types.submodule {
              options = {
                text = mkOption { type = types.nullOr types.lines; default = null; };
                source = mkOption { type = types.nullOr types.unspecified; default = null; };
                mode = mkOption { type = types.str; default = "symlink"; };
              };
            }
          );
          default = { };
        };
        environment.systemPackages = mkOption { type = types.listOf types.package; default = [ ]; };
        environment.variables = mkOption { type = types.attrsOf (types.either types.str (types.listOf types.str)); default = { }; };

        systemd.services = mkOption { type = types.attrsOf (types.submodule unitOptions); default = { }; };
        systemd.timers = mkOption { type = types.attrsOf (types.submodule unitOptions); default = { }; };
        systemd.tmpfiles.rules = mkOption { type = types.listOf types.str; default = [ ]; };

        # nixos/modules/services/networking/ssh/sshd.nix: freeform settings with typed keys.
        services.openssh = {
          enable = mkOption { type = types.bool; default = false; };
          authorizedKeysInHomedir = mkOption { type = types.bool; default = true; };
          openFirewall = mkOption { type = types.bool; default = true; };
          settings = mkOption {
            default = { };
            type = types.submodule {
              freeformType = types.attrsOf (types.nullOr (types.oneOf [ types.bool types.int types.str (types.listOf types.str) ]));
              options = {
                PasswordAuthentication = mkOption { type = types.bool; default = true; };
                KbdInteractiveAuthentication = mkOption { type = types.bool; default = true; };
                PermitRootLogin = mkOption {
                  type = types.enum [ "yes" "without-password" "prohibit-password" "forced-commands-only" "no" ];
                  default = "prohibit-password";
                };
                LogLevel = mkOption {
                  type = types.nullOr (types.enum [ "QUIET" "FATAL" "ERROR" "INFO" "VERBOSE" "DEBUG" "DEBUG1" "DEBUG2" "DEBUG3" ]);
                  default = "INFO";
                };
                AuthorizedPrincipalsFile = mkOption { type = types.nullOr types.str; default = "none"; };
                Ciphers = mkOption { type = types.nullOr (types.listOf types.str); default = [ "chacha20-poly1305@openssh.com" "aes256-gcm@openssh.com" ]; };
                Macs = mkOption { type = types.nullOr (types.listOf types.str); default = [ "hmac-sha2-512-etm@openssh.com" ]; };
                KexAlgorithms = mkOption { type = types.nullOr (types.listOf types.str); default = [ "curve25519-sha256" ]; };
              };
            };
          };
        };
        users.mutableUsers = mkOption { type = types.bool; default = true; };
        users.allowNoPasswordLogin = mkOption { type = types.bool; default = false; };
        users.users = mkOption {
          type = types.attrsOf (
            types.submodule {
              options = {
                isNormalUser = mkOption { type = types.bool; default = false; };
                extraGroups = mkOption { type = types.listOf types.str; default = [ ]; };
                hashedPasswordFile = mkOption { type = types.nullOr types.str; default = null; };
                openssh.authorizedPrincipals = mkOption { type = types.listOf types.singleLineStr; default = [ ]; };
              };
            }
          );
          default = { };
        };

        # nixos/modules/security/audit.nix and auditd.nix.
        security.audit = {
          enable = mkOption { type = types.enum [ false true "lock" ]; default = false; };
          failureMode = mkOption { type = types.enum [ "silent" "printk" "panic" ]; default = "printk"; };
          backlogLimit = mkOption { type = types.int; default = 64; };
          rateLimit = mkOption { type = types.int; default = 0; };
          rules = mkOption { type = types.listOf types.str; default = [ ]; };
        };
        security.auditd = {
          enable = mkOption { type = types.bool; default = false; };
          settings = mkOption {
            default = { };
            type = types.submodule {
              freeformType = types.attrsOf (types.nullOr (types.oneOf [ types.bool types.nonEmptyStr types.path types.int ]));
              options = {
                space_left = mkOption { type = types.either types.int (types.strMatching "[0-9]+%"); default = 75; };
                admin_space_left = mkOption { type = types.either types.int (types.strMatching "[0-9]+%"); default = 50; };
              };
            };
          };
        };
        security.sudo.execWheelOnly = mkOption { type = types.bool; default = false; };

        services.journald = {
          storage = mkOption { type = types.enum [ "persistent" "volatile" "auto" "none" ]; default = "persistent"; };
          extraConfig = mkOption { type = types.lines; default = ""; };
        };
        services.timesyncd.enable = mkOption { type = types.bool; default = true; };
        services.chrony = {
          enable = mkOption { type = types.bool; default = false; };
          servers = mkOption { type = types.listOf types.str; default = [ ]; };
        };

        boot.kernel.sysctl = mkOption {
          type = types.attrsOf (types.nullOr (types.oneOf [ types.bool types.str types.int ]));
          default = { };
        };
        boot.kernelParams = mkOption { type = types.listOf types.str; default = [ ]; };
        boot.blacklistedKernelModules = mkOption { type = types.listOf types.str; default = [ ]; };
        systemd.coredump.enable = mkOption { type = types.bool; default = true; };
        boot.initrd = {
          systemd.enable = mkOption { type = types.bool; default = false; };
          systemd.network = {
            enable = mkOption { type = types.bool; default = false; };
            networks = mkOption { type = types.attrsOf (types.attrsOf types.anything); default = { }; };
          };
          network.enable = mkOption { type = types.bool; default = false; };
          availableKernelModules = mkOption { type = types.listOf types.str; default = [ ]; };
          luks.devices = mkOption {
            type = types.attrsOf (
              types.submodule {
                options = {
                  device = mkOption { type = types.str; };
                  allowDiscards = mkOption { type = types.bool; default = false; };
                  crypttabExtraOpts = mkOption { type = types.listOf types.str; default = [ ]; };
                };
              }
            );
            default = { };
          };
          clevis = {
            enable = mkOption { type = types.bool; default = false; };
            useTang = mkOption { type = types.bool; default = false; };
            devices = mkOption {
              type = types.attrsOf (types.submodule { options.secretFile = mkOption { type = types.path; }; });
              default = { };
            };
          };
        };

        # Options the example hosts set (hardware, boot loader, locale).
        boot.loader.systemd-boot.enable = mkOption { type = types.bool; default = false; };
        boot.loader.efi.canTouchEfiVariables = mkOption { type = types.bool; default = false; };
        fileSystems = mkOption { type = types.attrsOf (types.attrsOf types.anything); default = { }; };
        swapDevices = mkOption { type = types.listOf types.anything; default = [ ]; };
        time.timeZone = mkOption { type = types.nullOr types.str; default = null; };
        networking.useDHCP = mkOption { type = types.bool; default = true; };
        nixpkgs.hostPlatform = mkOption { type = types.str; default = "x86_64-linux"; };
        system.stateVersion = mkOption { type = types.str; };
        services.restic.backups = mkOption { type = types.attrsOf (types.attrsOf types.anything); default = { }; };
        services.nginx.enable = mkOption { type = types.bool; default = false; };
        services.nginx.sslProtocols = mkOption { type = types.str; default = "TLSv1.2 TLSv1.3"; };
        services.postgresql.enable = mkOption { type = types.bool; default = false; };
      };
    };
}
