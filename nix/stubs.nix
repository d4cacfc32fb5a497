# STAND-IN for the NixOS module system's option declarations, used by scripts/eval-modules,
# the options-doc generator and (for the files it has no real copy of) scripts/eval-real-nixpkgs,
# where the whole of nixpkgs is not available (this CI machine has nixpkgs' `lib` at most).
#
# One module per nixpkgs 26.05 file, keyed by that file's path in nixpkgs: each declares the
# options msp-flake's modules, the example hosts, the checks' hosts and the VM test nodes set
# or read, with the TYPE, DEFAULT and MERGE BEHAVIOUR of the real declaration, and makes the
# definitions that file itself makes where they interact with ours (sysctl.nix's
# kptr_restrict, auditd.nix's audit.enable and its assertion, sshd.nix's
# AuthorizedPrincipalsFile, firewall port and duplicate-key assertion, restic's default timer).
# scripts/eval-real-nixpkgs swaps a key's stand-in for the real file when it has one
# (docs/nixpkgs-eval.md lists which). `support` holds declarations only a real file needs.
#
# Still a stand-in: it builds nothing (`pkgs` builders return placeholder store paths), and
# systemd units are freeform here (typed only where we read them). `nix flake check` on a
# machine with nixpkgs evaluates the real module system.
{ lib }:
let
  inherit (lib) mkOption types;

  fakePath = name: "/nix/store/00000000000000000000000000000000-${name}";
  fakeDrv =
    name: extra:
    {
      type = "derivation";
      inherit name;
      outPath = fakePath name;
      meta = { };
    }
    // extra;

  # A nullable choice of types with the description nixpkgs' formats give it.
  nullOrOneOf = description: ts: types.nullOr (types.oneOf ts) // { inherit description; };

  # pkgs.formats.yaml's value type (nixpkgs pkgs/pkgs-lib/formats.nix).
  yamlValue =
    let
      valueType = nullOrOneOf "YAML value" [
        types.bool
        types.int
        types.float
        types.str
        types.path
        (types.attrsOf valueType)
        (types.listOf valueType)
      ];
    in
    valueType;

  # pkgs.formats.keyValue { } (pkgs/pkgs-lib/formats.nix): without listsAsDuplicateKeys or
  # listToValue, every value is a single atom; a list is a type error.
  keyValueAtom = nullOrOneOf "atom (null, bool, int, float or string)" [
    types.bool
    types.int
    types.float
    types.str
  ];

  pkgs = {
    formats.yaml = _: {
      type = yamlValue;
      # `value` kept so tests can inspect exactly what would be rendered.
      generate = name: value: fakeDrv name { inherit value; };
    };
    formats.keyValue = _: {
      type = types.attrsOf keyValueAtom;
      generate = name: value: fakeDrv name { inherit value; };
    };
    runCommand = name: _env: script: fakeDrv name { inherit script; };
    writeText = name: text: fakeDrv name { inherit text; };
    writeTextDir = name: text: fakeDrv name { inherit text; };
    writeScript = name: text: fakeDrv name { inherit text; };
    writeShellScript = name: text: fakeDrv name { inherit text; };
    writeShellScriptBin = name: text: fakeDrv name { inherit text; };
    callPackage = _fn: _args: fakeDrv "msp-agent-0.1.0" { meta.mainProgram = "msp-agent"; };
    coreutils = fakeDrv "coreutils" { };
    gnugrep = fakeDrv "gnugrep" { };
    jq = fakeDrv "jq" { };
    clevis = fakeDrv "clevis" { };
    openssh = fakeDrv "openssh" { withKerberos = false; };
    audit = fakeDrv "audit" { };
    xauth = fakeDrv "xauth" { meta.mainProgram = "xauth"; };
    chrony = fakeDrv "chrony" { };
    jose = fakeDrv "jose" { };
    curl = fakeDrv "curl" { };
    bash = fakeDrv "bash" { };
    tpm2-tools = fakeDrv "tpm2-tools" { };
    tpm2-tss = fakeDrv "tpm2-tss" { };
    runtimeShell = "/bin/sh";
    stdenv = {
      buildPlatform = "x86_64-linux";
      hostPlatform = "x86_64-linux";
    };
    buildPackages = { inherit (pkgs) openssh; };
    inherit lib;
  };

  # nixos/lib/utils.nix, the parts the real files we load use.
  utils = {
    systemdUtils.lib.toOption =
      x:
      if x == true then
        "true"
      else if x == false then
        "false"
      else
        toString x;
    escapeSystemdPath = s: builtins.replaceStrings [ "/" "-" " " ] [ "-" "\\x2d" "\\x20" ] (lib.removePrefix "/" s);
  };

  anyAttrs = mkOption {
    type = types.attrsOf types.anything;
    default = { };
  };

  # nixos/lib/systemd-unit-options.nix: the unit options we read are typed as there (lists
  # concatenate, scripts are `lines`); the many others are accepted freeform.
  unitOptions = {
    freeformType = types.attrsOf types.anything;
    options = {
      enable = mkOption { type = types.bool; default = true; };
      description = mkOption { type = types.singleLineStr; default = ""; };
      documentation = mkOption { type = types.listOf types.str; default = [ ]; };
      wantedBy = mkOption { type = types.listOf types.str; default = [ ]; };
      wants = mkOption { type = types.listOf types.str; default = [ ]; };
      after = mkOption { type = types.listOf types.str; default = [ ]; };
      before = mkOption { type = types.listOf types.str; default = [ ]; };
      conflicts = mkOption { type = types.listOf types.str; default = [ ]; };
      restartTriggers = mkOption { type = types.listOf types.unspecified; default = [ ]; };
      restartIfChanged = mkOption { type = types.bool; default = true; };
      stopIfChanged = mkOption { type = types.bool; default = true; };
      serviceConfig = anyAttrs;
      unitConfig = anyAttrs;
      timerConfig = anyAttrs;
      environment = anyAttrs;
      path = mkOption { type = types.listOf types.unspecified; default = [ ]; };
      script = mkOption { type = types.lines; default = ""; };
    };
  };

  # The definitions nixpkgs 26.05 makes itself that meet ours, as data (shared with the pure
  # CI check checks/lib/unique-defs.nix): option -> { file; priority; value }.
  nixpkgsDefinitions = import ./nixpkgs-definitions.nix;

  declarations = {
    # nixos/modules/misc/ids.nix: the fixed ids the real files we load look up.
    "nixos/modules/misc/ids.nix" = {
      options.ids.uids = mkOption { type = types.attrsOf types.int; default = { chrony = 61; }; };
      options.ids.gids = mkOption { type = types.attrsOf types.int; default = { chrony = 61; systemd-journal = 62; }; };
    };
    "nixos/modules/misc/meta.nix" = {
      options.meta = mkOption { type = types.attrsOf types.unspecified; default = { }; };
    };

    "nixos/modules/misc/assertions.nix" = {
      options.assertions = mkOption { type = types.listOf types.unspecified; internal = true; default = [ ]; };
      options.warnings = mkOption { type = types.listOf types.str; internal = true; default = [ ]; };
    };

    "nixos/modules/tasks/network-interfaces.nix" = {
      options.networking.hostName = mkOption {
        type = types.strMatching "^$|^[[:alnum:]]([[:alnum:]_-]{0,61}[[:alnum:]])?$";
        default = "nixos";
      };
      options.networking.useDHCP = mkOption { type = types.bool; default = true; };
      options.networking.enableIPv6 = mkOption { type = types.bool; default = true; };
    };

    "nixos/modules/services/networking/firewall.nix" = {
      options.networking.firewall = {
        enable = mkOption { type = types.bool; default = true; };
        allowPing = mkOption { type = types.bool; default = true; };
        logRefusedConnections = mkOption { type = types.bool; default = true; };
        allowedTCPPorts = mkOption { type = types.listOf types.port; default = [ ]; apply = lib.unique; };
        allowedUDPPorts = mkOption { type = types.listOf types.port; default = [ ]; apply = lib.unique; };
      };
    };

    "nixos/modules/system/etc/etc.nix" = {
      options.environment.etc = mkOption {
        type = types.attrsOf (
          types.submodule {
            options = {
              enable = mkOption { type = types.bool; default = true; };
              text = mkOption { type = types.nullOr types.lines; default = null; };
              source = mkOption { type = types.nullOr types.unspecified; default = null; };
              mode = mkOption { type = types.str; default = "symlink"; };
            };
          }
        );
        default = { };
      };
    };

    "nixos/modules/config/system-path.nix" = {
      options.environment.systemPackages = mkOption { type = types.listOf types.package; default = [ ]; };
    };
    "nixos/modules/config/shells-environment.nix" = {
      options.environment.variables = mkOption {
        type = types.attrsOf (types.oneOf [ (types.listOf (types.oneOf [ types.int types.str types.path ])) types.int types.str types.path ]);
        default = { };
      };
    };

    "nixos/modules/system/boot/systemd.nix" = {
      options.systemd.services = mkOption { type = types.attrsOf (types.submodule unitOptions); default = { }; };
      options.systemd.timers = mkOption { type = types.attrsOf (types.submodule unitOptions); default = { }; };
      options.systemd.paths = mkOption { type = types.attrsOf (types.submodule unitOptions); default = { }; };
      options.systemd.sockets = mkOption { type = types.attrsOf (types.submodule unitOptions); default = { }; };
      options.systemd.packages = mkOption { type = types.listOf types.package; default = [ ]; };
      options.systemd.package = mkOption { type = types.package; default = fakeDrv "systemd" { }; };
      options.systemd.generatorPath = mkOption { type = types.listOf types.unspecified; default = [ ]; };
    };
    "nixos/modules/system/boot/systemd/tmpfiles.nix" = {
      options.systemd.tmpfiles.rules = mkOption { type = types.listOf types.str; default = [ ]; };
      options.systemd.tmpfiles.settings = mkOption { type = types.attrsOf (types.attrsOf (types.attrsOf types.anything)); default = { }; };
    };
    "nixos/modules/system/boot/systemd/coredump.nix" = {
      options.systemd.coredump.enable = mkOption { type = types.bool; default = true; };
    };

    # The openssh.* user options are declared by sshd.nix itself (below); this is the rest.
    "nixos/modules/config/users-groups.nix" = {
      options.users.mutableUsers = mkOption { type = types.bool; default = true; };
      options.users.allowNoPasswordLogin = mkOption { type = types.bool; default = false; };
      options.users.groups = mkOption { type = types.attrsOf (types.attrsOf types.anything); default = { }; };
      options.users.users = mkOption {
        type = types.attrsOf (
          types.submodule (
            { name, ... }:
            {
            options = {
              name = mkOption { type = types.passwdEntry types.str; default = name; };
              isNormalUser = mkOption { type = types.bool; default = false; };
              isSystemUser = mkOption { type = types.bool; default = false; };
              description = mkOption { type = types.passwdEntry types.str; default = ""; };
              group = mkOption { type = types.str; default = ""; };
              extraGroups = mkOption { type = types.listOf types.str; default = [ ]; };
              hashedPasswordFile = mkOption { type = types.nullOr types.str; default = null; };
              password = mkOption { type = types.nullOr types.str; default = null; };
              home = mkOption { type = types.passwdEntry types.path; default = "/var/empty"; };
              uid = mkOption { type = types.nullOr types.int; default = null; };
            };
            }
          )
        );
        default = { };
      };
    };

    # nixos/modules/services/networking/ssh/sshd.nix (26.05): freeform settings of
    # pkgs.formats.keyValue atoms (no lists) with typed, nullable keys; the recommended
    # algorithm lists as defaults.
    "nixos/modules/services/networking/ssh/sshd.nix" =
      { config, ... }:
      let
        cfg = config.services.openssh;
        principalUsers = lib.filterAttrs (_: u: u.openssh.authorizedPrincipals != [ ]) config.users.users;
        nullOrEnum = vs: types.nullOr (types.enum vs);
      in
      {
        options.users.users = mkOption {
          type = types.attrsOf (
            types.submodule {
              options.openssh.authorizedPrincipals = mkOption { type = types.listOf types.singleLineStr; default = [ ]; };
              options.openssh.authorizedKeys.keys = mkOption { type = types.listOf types.singleLineStr; default = [ ]; };
              options.openssh.authorizedKeys.keyFiles = mkOption { type = types.listOf types.path; default = [ ]; };
            }
          );
        };
        options.services.openssh = {
          enable = mkOption { type = types.bool; default = false; };
          authorizedKeysInHomedir = mkOption { type = types.bool; default = true; };
          openFirewall = mkOption { type = types.bool; default = true; };
          ports = mkOption { type = types.listOf types.port; default = [ 22 ]; };
          extraConfig = mkOption { type = types.lines; default = ""; };
          settings = mkOption {
            default = { };
            type = types.submodule {
              freeformType = types.attrsOf keyValueAtom;
              options = {
                AuthorizedPrincipalsFile = mkOption { type = types.nullOr types.str; default = "none"; };
                PasswordAuthentication = mkOption { type = types.nullOr types.bool; default = true; };
                KbdInteractiveAuthentication = mkOption { type = types.nullOr types.bool; default = true; };
                PermitRootLogin = mkOption {
                  type = nullOrEnum [ "yes" "without-password" "prohibit-password" "forced-commands-only" "no" ];
                  default = "prohibit-password";
                };
                LogLevel = mkOption {
                  type = nullOrEnum [ "QUIET" "FATAL" "ERROR" "INFO" "VERBOSE" "DEBUG" "DEBUG1" "DEBUG2" "DEBUG3" ];
                  default = "INFO";
                };
                UsePAM = mkOption { type = types.nullOr types.bool; default = true; };
                X11Forwarding = mkOption { type = types.nullOr types.bool; default = false; };
                Ciphers = mkOption {
                  type = types.nullOr (types.listOf types.str);
                  default = [ "chacha20-poly1305@openssh.com" "aes256-gcm@openssh.com" "aes128-gcm@openssh.com" "aes256-ctr" "aes192-ctr" "aes128-ctr" ];
                };
                Macs = mkOption {
                  type = types.nullOr (types.listOf types.str);
                  default = [ "hmac-sha2-512-etm@openssh.com" "hmac-sha2-256-etm@openssh.com" "umac-128-etm@openssh.com" ];
                };
                KexAlgorithms = mkOption {
                  type = types.nullOr (types.listOf types.str);
                  default = [
                    "mlkem768x25519-sha256"
                    "sntrup761x25519-sha512"
                    "sntrup761x25519-sha512@openssh.com"
                    "curve25519-sha256"
                    "curve25519-sha256@libssh.org"
                    "diffie-hellman-group-exchange-sha256"
                  ];
                };
              };
            };
          };
        };
        config = lib.mkIf cfg.enable {
          assertions = [
            (
              let
                duplicates = lib.filter (l: lib.length l > 1) (lib.attrValues (lib.groupBy lib.toLower (lib.attrNames cfg.settings)));
              in
              {
                assertion = duplicates == [ ];
                message = "Duplicate sshd config key; does your capitalization match the option's? Duplicate keys: ${builtins.toJSON duplicates}";
              }
            )
          ];
          networking.firewall.allowedTCPPorts = lib.optionals cfg.openFirewall cfg.ports;
          environment.etc = lib.mapAttrs' (
            n: u:
            lib.nameValuePair "ssh/authorized_principals.d/${n}" {
              mode = "0444";
              text = lib.concatStringsSep "\n" u.openssh.authorizedPrincipals;
            }
          ) principalUsers;
          # Normal priority, as in sshd.nix: it wins over our mkDefault (same value).
          services.openssh.settings.AuthorizedPrincipalsFile = lib.mkIf (principalUsers != { }) "/etc/ssh/authorized_principals.d/%u";
        };
      };

    # nixos/modules/security/audit.nix (26.05): backlogLimit defaults to 1024.
    "nixos/modules/security/audit.nix" = {
      options.security.audit = {
        enable = mkOption { type = types.enum [ false true "lock" ]; default = false; };
        package = mkOption { type = types.package; default = pkgs.audit; };
        failureMode = mkOption { type = types.enum [ "silent" "printk" "panic" ]; default = "printk"; };
        backlogLimit = mkOption { type = types.int; default = 1024; };
        rateLimit = mkOption { type = types.int; default = 0; };
        rules = mkOption { type = types.listOf types.str; default = [ ]; };
      };
    };

    # nixos/modules/security/auditd.nix (26.05), with what its config section does to ours.
    "nixos/modules/security/auditd.nix" =
      { config, ... }:
      let
        cfg = config.security.auditd;
        settingsType = types.nullOr (types.oneOf [ types.bool types.nonEmptyStr types.path types.int ]);
        spaceType = types.either types.int (types.strMatching "[0-9]+%");
        percent = s: lib.toInt (lib.removeSuffix "%" s);
      in
      {
        options.security.auditd = {
          enable = mkOption { type = types.bool; default = false; };
          settings = mkOption {
            default = { };
            type = types.submodule {
              freeformType = types.attrsOf settingsType;
              options = {
                space_left = mkOption { type = spaceType; default = 75; };
                admin_space_left = mkOption { type = spaceType; default = 50; };
              };
            };
          };
        };
        config = lib.mkIf cfg.enable {
          assertions = [
            {
              assertion =
                ((lib.isInt cfg.settings.space_left && lib.isInt cfg.settings.admin_space_left) -> cfg.settings.space_left > cfg.settings.admin_space_left)
                && (
                  (lib.isString cfg.settings.space_left && lib.isString cfg.settings.admin_space_left)
                  -> percent cfg.settings.space_left > percent cfg.settings.admin_space_left
                );
              message = "`security.auditd.settings.space_left` must be larger than `security.auditd.settings.admin_space_left`";
            }
          ];
          security.audit.enable = lib.mkOverride nixpkgsDefinitions."security.audit.enable".priority nixpkgsDefinitions."security.audit.enable".value;
          security.auditd.settings.plugin_dir = "/etc/audit/plugins.d";
        };
      };

    "nixos/modules/security/sudo.nix" = {
      options.security.sudo.enable = mkOption { type = types.bool; default = true; };
      options.security.sudo.execWheelOnly = mkOption { type = types.bool; default = false; };
    };

    # nixos/modules/system/boot/systemd/journald.nix (26.05 still has extraConfig).
    "nixos/modules/system/boot/systemd/journald.nix" = {
      options.services.journald = {
        storage = mkOption { type = types.enum [ "persistent" "volatile" "auto" "none" ]; default = "persistent"; };
        extraConfig = mkOption { type = types.lines; default = ""; };
      };
    };
    # timesyncd.nix: on by default (chrony.nix turns it off; we set it false ourselves too).
    "nixos/modules/system/boot/timesyncd.nix" = {
      options.services.timesyncd.enable = mkOption { type = types.bool; default = true; };
    };
    # nixos/modules/services/networking/ntp/chrony.nix: servers default to networking.timeServers.
    "nixos/modules/services/networking/ntp/chrony.nix" =
      { config, ... }:
      {
        options.services.chrony = {
          enable = mkOption { type = types.bool; default = false; };
          servers = mkOption {
            type = types.listOf types.str;
            default = config.networking.timeServers;
          };
        };
      };
    "nixos/modules/config/networking.nix" = {
      options.networking.timeServers = mkOption {
        type = types.listOf types.str;
        default = [
          "0.nixos.pool.ntp.org"
          "1.nixos.pool.ntp.org"
          "2.nixos.pool.ntp.org"
          "3.nixos.pool.ntp.org"
        ];
      };
    };

    # nixos/modules/config/sysctl.nix (26.05): each freeform key merges with mergeOneOption
    # after priority filtering, so two definitions at the winning priority are an error even
    # when equal; it defines kptr_restrict and vm.max_map_count itself at mkDefault.
    "nixos/modules/config/sysctl.nix" =
      let
        sysctlOption = lib.mkOptionType {
          name = "sysctl option value";
          check =
            val:
            let
              checkType = x: lib.isBool x || lib.isString x || lib.isInt x || x == null;
            in
            checkType val || (val._type or "" == "override" && checkType val.content);
          merge = loc: defs: lib.mergeOneOption loc (lib.filterOverrides defs);
        };
        highestValueType = types.ints.unsigned // {
          merge = loc: defs: lib.foldl (a: b: if b.value == null then null else lib.max a b.value) 0 (lib.filterOverrides defs);
        };
      in
      {
        options.boot.kernel.sysctl = mkOption {
          default = { };
          type = types.submodule {
            freeformType = types.attrsOf sysctlOption;
            options = {
              "net.core.rmem_max" = mkOption { type = types.nullOr highestValueType; default = null; };
              "net.core.wmem_max" = mkOption { type = types.nullOr highestValueType; default = null; };
            };
          };
        };
        config.boot.kernel.sysctl = lib.mapAttrs (_: d: lib.mkOverride d.priority d.value) nixpkgsDefinitions.sysctl;
      };

    "nixos/modules/system/boot/kernel.nix" = {
      options.boot.kernelParams = mkOption { type = types.listOf (types.strMatching ''([^"[:space:]]|"[^"]*")+''); default = [ ]; };
      options.boot.blacklistedKernelModules = mkOption { type = types.listOf types.str; default = [ ]; };
      options.boot.initrd.availableKernelModules = mkOption { type = types.listOf types.str; default = [ ]; };
    };
    "nixos/modules/system/boot/systemd/initrd.nix" = {
      options.boot.initrd.systemd.enable = mkOption { type = types.bool; default = false; };
    };
    "nixos/modules/system/boot/networkd.nix" = {
      options.boot.initrd.systemd.network = {
        enable = mkOption { type = types.bool; default = false; };
        networks = mkOption { type = types.attrsOf (types.attrsOf types.anything); default = { }; };
      };
    };
    "nixos/modules/system/boot/initrd-network.nix" = {
      options.boot.initrd.network.enable = mkOption { type = types.bool; default = false; };
    };
    # nixos/modules/system/boot/luksroot.nix: crypttabExtraOpts is a list of single-line strings.
    "nixos/modules/system/boot/luksroot.nix" = {
      options.boot.initrd.luks.devices = mkOption {
        type = types.attrsOf (
          types.submodule {
            options = {
              device = mkOption { type = types.str; };
              allowDiscards = mkOption { type = types.bool; default = false; };
              crypttabExtraOpts = mkOption { type = types.listOf types.singleLineStr; default = [ ]; };
            };
          }
        );
        default = { };
      };
    };
    "nixos/modules/system/boot/clevis.nix" = {
      options.boot.initrd.clevis = {
        enable = mkOption { type = types.bool; default = false; };
        useTang = mkOption { type = types.bool; default = false; };
        devices = mkOption {
          type = types.attrsOf (types.submodule { options.secretFile = mkOption { type = types.path; }; });
          default = { };
        };
      };
    };
    "nixos/modules/system/activation/top-level.nix" = {
      options.system.build = mkOption {
        type = types.submoduleWith { modules = [ { freeformType = types.lazyAttrsOf (types.uniq types.unspecified); } ]; };
        default = { };
      };
      options.system.checks = mkOption { type = types.listOf types.package; default = [ ]; };
    };
    "nixos/modules/system/activation/pre-switch-check.nix" = {
      options.system.preSwitchChecks = mkOption { type = types.attrsOf types.str; default = { }; };
    };

    # Options the example hosts set (hardware, boot loader, locale, services).
    "nixos/modules/system/boot/loader/systemd-boot/systemd-boot.nix" = {
      options.boot.loader.systemd-boot.enable = mkOption { type = types.bool; default = false; };
    };
    "nixos/modules/system/boot/loader/efi.nix" = {
      options.boot.loader.efi.canTouchEfiVariables = mkOption { type = types.bool; default = false; };
    };
    "nixos/modules/tasks/filesystems.nix" =
      { config, ... }:
      {
        options.fileSystems = mkOption { type = types.attrsOf (types.attrsOf types.anything); default = { }; };
        config.system.build.fileSystems = lib.mapAttrsToList (mountPoint: fs: { inherit mountPoint; } // fs) config.fileSystems;
      };
    "nixos/modules/config/swap.nix" = {
      options.swapDevices = mkOption { type = types.listOf types.anything; default = [ ]; };
    };
    "nixos/modules/config/locale.nix" = {
      options.time.timeZone = mkOption { type = types.nullOr (types.addCheck types.str (s: builtins.match "[^ ]+" s != null)); default = null; };
    };
    "nixos/modules/misc/nixpkgs.nix" = {
      options.nixpkgs.hostPlatform = mkOption { type = types.either types.str (types.attrsOf types.anything); };
    };
    "nixos/modules/misc/version.nix" = {
      options.system.stateVersion = mkOption { type = types.str; };
    };
    # nixos/modules/services/backup/restic.nix: timerConfig defaults to a daily, persistent timer.
    "nixos/modules/services/backup/restic.nix" = {
      options.services.restic.backups = mkOption {
        default = { };
        type = types.attrsOf (
          types.submodule {
            freeformType = types.attrsOf types.anything;
            options.timerConfig = mkOption {
              type = types.nullOr (types.attrsOf (types.oneOf [ types.str types.bool types.int (types.listOf types.str) ]));
              default = {
                OnCalendar = "daily";
                Persistent = true;
              };
            };
          }
        );
      };
    };
    "nixos/modules/services/web-servers/nginx/default.nix" = {
      options.services.nginx.enable = mkOption { type = types.bool; default = false; };
      options.services.nginx.sslProtocols = mkOption { type = types.str; default = "TLSv1.2 TLSv1.3"; };
    };
    "nixos/modules/services/databases/postgresql.nix" = {
      options.services.postgresql.enable = mkOption { type = types.bool; default = false; };
    };
  };

  # Declarations only the REAL files need (options they set or read that no stand-in above
  # declares), keyed like `declarations`; scripts/eval-real-nixpkgs adds these with the file.
  support = {
    "nixos/modules/services/networking/ssh/sshd.nix" = {
      options.programs.ssh.package = mkOption { type = types.package; default = pkgs.openssh; };
      options.programs.ssh.setXAuthLocation = mkOption { type = types.bool; default = false; };
      options.programs.ssh.knownHosts = mkOption { type = types.attrsOf types.anything; default = { }; };
      options.system.nssModules.path = mkOption { type = types.str; default = ""; };
      options.security.pam.services = mkOption { type = types.attrsOf (types.attrsOf types.anything); default = { }; };
    };
    "nixos/modules/services/networking/ntp/chrony.nix" = {
      options.time.hardwareClockInLocalTime = mkOption { type = types.bool; default = false; };
      options.networking.networkmanager.enable = mkOption { type = types.bool; default = false; };
      options.networking.networkmanager.dispatcherScripts = mkOption { type = types.listOf (types.attrsOf types.anything); default = [ ]; };
      options.environment.memoryAllocator.provider = mkOption { type = types.str; default = "libc"; };
    };
    "nixos/modules/system/boot/clevis.nix" = {
      options.boot.initrd.extraUtilsCommands = mkOption { type = types.lines; default = ""; };
      options.boot.initrd.secrets = mkOption { type = types.attrsOf (types.nullOr types.path); default = { }; };
      options.boot.initrd.systemd.extraBin = mkOption { type = types.attrsOf types.path; default = { }; };
      options.boot.initrd.systemd.storePaths = mkOption { type = types.listOf types.unspecified; default = [ ]; };
    };
    "nixos/modules/system/boot/systemd/journald.nix" = {
      # The target of its mkRenamedOptionModule (declared by journald-gateway.nix).
      options.services.journald.gateway.enable = mkOption { type = types.bool; default = false; };
      options.services.rsyslogd.enable = mkOption { type = types.bool; default = false; };
      options.services.syslog-ng.enable = mkOption { type = types.bool; default = false; };
      options.systemd.additionalUpstreamSystemUnits = mkOption { type = types.listOf types.str; default = [ ]; };
    };
  };
in
{
  inherit pkgs utils declarations support nixpkgsDefinitions;

  # Every stand-in at once: what scripts/eval-modules and the options doc evaluate with.
  module = {
    imports = lib.attrValues declarations;
  };
}
