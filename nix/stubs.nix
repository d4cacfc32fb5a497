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
# (docs/nixpkgs-eval.md lists which); some keys declare only what a real file reads.
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
    let
      self = {
        type = "derivation";
        inherit name;
        outPath = fakePath name;
        meta = { };
        out = self;
      }
      // extra;
    in
    self;

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
    # nix/package.nix's `program` argument picks the binary (msp-agent unless told).
    callPackage =
      _fn: args:
      let
        program = args.program or "msp-agent";
      in
      fakeDrv "${program}-0.1.0" { meta.mainProgram = program; };
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
    # users-groups.nix: shells are derivations with shellPath; crypt schemes for its hash check.
    shadow = fakeDrv "shadow" { shellPath = "/bin/nologin"; };
    bashInteractive = fakeDrv "bash-interactive" { shellPath = "/bin/bash"; };
    fish = fakeDrv "fish" { shellPath = "/bin/fish"; };
    xonsh = fakeDrv "xonsh" { shellPath = "/bin/xonsh"; };
    zsh = fakeDrv "zsh" { shellPath = "/bin/zsh"; };
    libxcrypt.enabledCryptSchemeIds = [ "y" "gy" "7" "2b" "2y" "2a" "6" "5" "sha1" "md5" "1" ];
    buildEnv = args: fakeDrv args.name { };
    substitute = _args: fakeDrv "substituted" { };
    linkFarm = name: _entries: fakeDrv name { };
    writeTextFile = args: fakeDrv args.name { inherit (args) text; };
    symlinkJoin = args: fakeDrv args.name { };
    writeShellApplication = args: fakeDrv args.name { inherit (args) text; meta.mainProgram = args.name; };
    nftables = fakeDrv "nftables" { };
    iptables = fakeDrv "iptables" { };
    perl.withPackages = _: fakeDrv "perl-with-packages" { };
    tpm2-tools = fakeDrv "tpm2-tools" { };
    tpm2-tss = fakeDrv "tpm2-tss" { };
    cryptsetup = fakeDrv "cryptsetup" { };
    gnused = fakeDrv "gnused" { };
    bashNonInteractive = fakeDrv "bash" { };
    klibc = fakeDrv "klibc" { };
    restic = fakeDrv "restic" { meta.mainProgram = "restic"; };
    sudo = fakeDrv "sudo" { pname = "sudo"; };
    systemd = fakeDrv "systemd" { util-linux = fakeDrv "util-linux" { }; };
    openssl = fakeDrv "openssl" { bin = fakeDrv "openssl-bin" { }; out = fakeDrv "openssl" { }; };
    writeScriptBin = name: text: fakeDrv name { inherit text; };
    runCommandCC = name: _env: script: fakeDrv name { inherit script; };
    runtimeShell = "/bin/sh";
    stdenv = rec {
      buildPlatform = {
        system = "x86_64-linux";
        is32bit = false;
        isLoongArch64 = false;
      };
      hostPlatform = buildPlatform;
    };
    buildPackages = { inherit (pkgs) openssh sudo; };
    inherit lib;
  };

  # STAND-IN for nixos/lib/utils.nix and nixos/lib/systemd-lib.nix / systemd-unit-options.nix:
  # only the parts the real files we load use, with the same merge behaviour.
  utils = {
    systemdUtils.lib.toOption =
      x:
      if x == true then
        "true"
      else if x == false then
        "false"
      else
        toString x;
    # systemd-lib.nix settingsToSections: "[Section]" then "Key=value" lines (lists repeat the key).
    systemdUtils.lib.settingsToSections =
      settings:
      lib.concatStrings (
        lib.mapAttrsToList (
          section: attrs:
          "[${section}]\n"
          + lib.concatStrings (
            lib.mapAttrsToList (
              k: v: lib.concatMapStrings (x: "${k}=${utils.systemdUtils.lib.toOption x}\n") (lib.toList v)
            ) attrs
          )
          + "\n"
        ) settings
      );
    # systemd-unit-options.nix unitOption: an atom or a list of atoms; lists concatenate,
    # atoms must be equal at the winning priority (mergeEqualOption).
    systemdUtils.unitOptions.unitOption = lib.mkOptionType {
      name = "systemd option";
      check =
        x:
        let
          atom = y: lib.isInt y || lib.isString y || lib.isBool y || lib.isPath y || lib.isFloat y || (lib.isAttrs y && y ? outPath);
        in
        atom x || (lib.isList x && lib.all atom x);
      merge =
        loc: defs:
        let
          defs' = lib.filterOverrides defs;
        in
        if lib.any (def: lib.isList def.value) defs' then
          lib.concatMap (def: lib.toList def.value) defs'
        else
          lib.mergeEqualOption loc defs';
    };
    # nixos/lib/utils.nix toShellPath.
    toShellPath = shell: if types.shellPackage.check shell then "/run/current-system/sw${shell.shellPath}" else shell;
    escapeSystemdPath = s: builtins.replaceStrings [ "/" "-" " " ] [ "-" "\\x2d" "\\x20" ] (lib.removePrefix "/" s);
  };

  anyAttrs = mkOption {
    type = types.attrsOf types.anything;
    default = { };
  };

  # systemd-lib.nix checkUnitConfig "Service" [ assertValueOneOf "Type" ...; "Restart" ... ].
  checkService =
    cfg:
    let
      oneOf = k: vs: !(cfg ? ${k}) || builtins.elem cfg.${k} vs;
    in
    oneOf "Type" [ "exec" "simple" "forking" "oneshot" "dbus" "notify" "notify-reload" "idle" ]
    && oneOf "Restart" [ "no" "on-success" "on-failure" "on-abnormal" "on-abort" "on-watchdog" "always" ];

  # nixos/lib/systemd-unit-options.nix: the unit options we read are typed as there (lists
  # concatenate, scripts are `lines`); the many others are accepted freeform.
  unitOptions =
    { config, ... }:
    {
    freeformType = types.attrsOf types.anything;
    # nixos/lib/systemd-lib.nix serviceConfig: PATH from `path` (restic's wrapper reads it).
    config.environment.PATH = lib.mkIf (config.path != [ ]) (lib.mkDefault (lib.makeBinPath config.path));
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
      # As systemd-unit-options.nix: each key is a unitOption (lists concatenate, atoms must
      # be equal at the winning priority), and checkService refuses unknown Type/Restart values.
      serviceConfig = mkOption { type = types.addCheck (types.attrsOf utils.systemdUtils.unitOptions.unitOption) checkService; default = { }; };
      unitConfig = mkOption { type = types.attrsOf utils.systemdUtils.unitOptions.unitOption; default = { }; };
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
      # Values as in ids.nix where known; users-groups.nix checks that they are unique.
      options.ids.uids = mkOption {
        type = types.attrsOf types.int;
        default = { root = 0; nobody = 65534; chrony = 61; systemd-coredump = 151; systemd-timesync = 154; };
      };
      options.ids.gids = mkOption {
        type = types.attrsOf types.int;
        default = {
          root = 0; wheel = 1; kmem = 2; tty = 3; disk = 6; audio = 17; floppy = 18; uucp = 19;
          lp = 20; cdrom = 24; tape = 25; video = 26; dialout = 27; utmp = 29; adm = 55;
          chrony = 61; systemd-journal = 62; users = 100; systemd-timesync = 154; input = 174;
          kvm = 302; render = 303; sgx = 304; shadow = 318; clock = 327; nixbld = 30000; nogroup = 65534;
        };
      };
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
        # 26.05-era firewall.nix: logRefusedConnections defaults to false; port lists are
        # sorted and de-duplicated.
        logRefusedConnections = mkOption { type = types.bool; default = false; };
        allowedTCPPorts = mkOption { type = types.listOf types.port; default = [ ]; apply = ps: lib.unique (builtins.sort builtins.lessThan ps); };
        allowedUDPPorts = mkOption { type = types.listOf types.port; default = [ ]; apply = ps: lib.unique (builtins.sort builtins.lessThan ps); };
      };
    };

    "nixos/modules/system/etc/etc.nix" =
      { config, ... }:
      {
      # The /etc builder (a placeholder) with the targets tmpfiles.nix reads.
      config.system.build.etc = fakeDrv "etc" { passthru.targets = lib.attrNames config.environment.etc; };
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
      options.environment.pathsToLink = mkOption { type = types.listOf types.str; default = [ ]; };
      options.environment.extraOutputsToInstall = mkOption { type = types.listOf types.str; default = [ ]; };
      options.system.path = mkOption { type = types.raw; default = { ignoreCollisions = true; postBuild = ""; }; };
    };
    "nixos/modules/config/shells-environment.nix" = {
      # programs/bash/bash.nix (on by default) makes it mkDefault pkgs.bashInteractive.
      options.users.defaultUserShell = mkOption { type = types.either types.path types.shellPackage; default = pkgs.bashInteractive; };
      options.environment.profiles = mkOption { type = types.listOf types.str; default = [ ]; };
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
      options.systemd.additionalUpstreamSystemUnits = mkOption { type = types.listOf types.str; default = [ ]; };
      # Declared by systemd/user.nix; tmpfiles.nix adds to it.
      options.systemd.additionalUpstreamUserUnits = mkOption { type = types.listOf types.str; default = [ ]; };
    };
    "nixos/modules/system/boot/systemd/tmpfiles.nix" = {
      options.systemd.tmpfiles.rules = mkOption { type = types.listOf types.str; default = [ ]; };
      options.systemd.tmpfiles.settings = mkOption { type = types.attrsOf (types.attrsOf (types.attrsOf types.anything)); default = { }; };
    };
    "nixos/modules/system/boot/systemd/coredump.nix" =
      { config, ... }:
      {
        options.systemd.coredump.enable = mkOption { type = types.bool; default = true; };
        # As coredump.nix: with systemd-coredump off, core files are named "core".
        config.boot.kernel.sysctl = lib.mkIf (!config.systemd.coredump.enable) { "kernel.core_pattern" = lib.mkDefault "core"; };
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
      # Read by luksroot.nix only for kernels older than 5.9/5.4 (never here): a placeholder.
      options.boot.kernelPackages = mkOption { type = types.raw; default = { kernel.version = "6.12.0"; }; };
      options.boot.initrd.kernelModules = mkOption { type = types.listOf types.str; default = [ ]; };
      options.boot.kernelModules = mkOption { type = types.listOf types.str; default = [ ]; };
      options.boot.kernelParams = mkOption { type = types.listOf (types.strMatching ''([^"[:space:]]|"[^"]*")+''); default = [ ]; };
      options.boot.blacklistedKernelModules = mkOption { type = types.listOf types.str; default = [ ]; };
      options.boot.initrd.availableKernelModules = mkOption { type = types.listOf types.str; default = [ ]; };
    };
    # nixos/modules/system/boot/systemd/initrd.nix: the options clevis.nix and luksroot.nix
    # set (services typed like the system's units, contents like environment.etc).
    "nixos/modules/system/boot/systemd/initrd.nix" = {
      options.boot.initrd.systemd = {
        enable = mkOption { type = types.bool; default = false; };
        package = mkOption { type = types.package; default = pkgs.systemd; };
        services = mkOption { type = types.attrsOf (types.submodule unitOptions); default = { }; };
        contents = mkOption {
          type = types.attrsOf (
            types.submodule {
              options.text = mkOption { type = types.nullOr types.lines; default = null; };
              options.source = mkOption { type = types.nullOr types.unspecified; default = null; };
            }
          );
          default = { };
        };
        # As initrd.nix: a path or package is coerced to { source; target; } (tmpfiles.nix
        # reads the targets).
        storePaths = mkOption {
          type = types.listOf (
            types.coercedTo (types.either types.singleLineStr types.package) (source: { inherit source; }) (
              types.submodule (
                { config, ... }:
                {
                  options.source = mkOption { type = types.either types.singleLineStr types.package; };
                  options.target = mkOption { type = types.nullOr types.str; default = "${config.source}"; };
                }
              )
            )
          );
          default = [ ];
        };
        extraBin = mkOption { type = types.attrsOf types.path; default = { }; };
        additionalUpstreamUnits = mkOption { type = types.listOf types.str; default = [ ]; };
      };
    };
    # nixos/modules/system/boot/systemd/tpm2.nix (on by default with systemd's TPM2 support).
    "nixos/modules/system/boot/systemd/tpm2.nix" = {
      options.boot.initrd.systemd.tpm2.enable = mkOption { type = types.bool; default = true; };
    };
    # nixos/modules/system/boot/stage-1.nix: the scripted-initrd hooks (mkIf'd off under the
    # systemd initrd by the real files) and the initrd secrets.
    "nixos/modules/system/boot/stage-1.nix" = {
      options.boot.initrd = {
        extraUtilsCommands = mkOption { type = types.lines; default = ""; };
        extraUtilsCommandsTest = mkOption { type = types.lines; default = ""; };
        preLVMCommands = mkOption { type = types.lines; default = ""; };
        postDeviceCommands = mkOption { type = types.lines; default = ""; };
        postMountCommands = mkOption { type = types.lines; default = ""; };
        preFailCommands = mkOption { type = types.lines; default = ""; };
        secrets = mkOption { type = types.attrsOf (types.nullOr types.path); default = { }; };
      };
    };
    # nixos/modules/tasks/lvm.nix (luksroot.nix turns it on).
    "nixos/modules/tasks/lvm.nix" = {
      options.services.lvm.enable = mkOption { type = types.bool; default = true; };
      options.boot.initrd.services.lvm.enable = mkOption { type = types.bool; default = false; };
    };
    # nixos/modules/virtualisation/nixos-containers.nix (timesyncd's enable default).
    "nixos/modules/virtualisation/nixos-containers.nix" = {
      options.boot.isContainer = mkOption { type = types.bool; default = false; };
    };
    # nixos/modules/programs/ssh.nix (sshd.nix and restic.nix read it).
    "nixos/modules/programs/ssh.nix" = {
      options.programs.ssh.package = mkOption { type = types.package; default = pkgs.openssh; };
      options.programs.ssh.setXAuthLocation = mkOption { type = types.bool; default = false; };
      options.programs.ssh.knownHosts = mkOption { type = types.attrsOf types.anything; default = { }; };
    };
    # nixos/modules/config/nsswitch.nix (sshd.nix, timesyncd.nix read it).
    "nixos/modules/config/nsswitch.nix" = {
      options.system.nssModules.path = mkOption { type = types.str; default = ""; };
    };
    # nixos/modules/security/pam.nix (sshd.nix and sudo.nix add services).
    "nixos/modules/security/pam.nix" = {
      options.security.pam.services = mkOption { type = types.attrsOf (types.attrsOf types.anything); default = { }; };
    };
    # Read by the real firewall.nix.
    "nixos/modules/services/networking/nftables.nix" = {
      options.networking.nftables.enable = mkOption { type = types.bool; default = false; };
    };
    "nixos/modules/services/networking/firewalld.nix" = {
      options.services.firewalld.enable = mkOption { type = types.bool; default = false; };
    };
    "nixos/modules/system/boot/modprobe.nix" = {
      options.boot.extraModprobeConfig = mkOption { type = types.lines; default = ""; };
    };
    # Read by the real users-groups.nix.
    "nixos/modules/system/activation/activation-script.nix" = {
      options.system.activationScripts = mkOption { type = types.attrsOf types.unspecified; default = { }; };
    };
    "nixos/modules/system/boot/systemd/sysusers.nix" = {
      options.systemd.sysusers.enable = mkOption { type = types.bool; default = false; };
    };
    "nixos/modules/services/system/userborn.nix" = {
      options.services.userborn.enable = mkOption { type = types.bool; default = false; };
    };
    "nixos/modules/security/google_oslogin.nix" = {
      options.security.googleOsLogin.enable = mkOption { type = types.bool; default = false; };
    };
    # nixos/modules/security/wrappers/default.nix (sudo.nix's setuid wrappers).
    "nixos/modules/security/wrappers/default.nix" = {
      options.security.wrappers = mkOption { type = types.attrsOf (types.attrsOf types.anything); default = { }; };
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
        package = mkOption { type = types.package; default = pkgs.clevis; };
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
      options.time.hardwareClockInLocalTime = mkOption { type = types.bool; default = false; };
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
    # Read by the real chrony.nix and journald.nix.
    "nixos/modules/services/networking/networkmanager.nix" = {
      options.networking.networkmanager.enable = mkOption { type = types.bool; default = false; };
      options.networking.networkmanager.dispatcherScripts = mkOption { type = types.listOf (types.attrsOf types.anything); default = [ ]; };
    };
    "nixos/modules/config/malloc.nix" = {
      options.environment.memoryAllocator.provider = mkOption { type = types.str; default = "libc"; };
    };
    "nixos/modules/services/logging/rsyslogd.nix" = {
      options.services.rsyslogd.enable = mkOption { type = types.bool; default = false; };
    };
    "nixos/modules/services/logging/syslog-ng.nix" = {
      options.services.syslog-ng.enable = mkOption { type = types.bool; default = false; };
    };
    # Target of an mkRenamedOptionModule in older journald.nix copies.
    "nixos/modules/system/boot/systemd/journald-gateway.nix" = {
      options.services.journald.gateway.enable = mkOption { type = types.bool; default = false; };
    };
    "nixos/modules/services/web-servers/nginx/default.nix" = {
      options.services.nginx.enable = mkOption { type = types.bool; default = false; };
      options.services.nginx.sslProtocols = mkOption { type = types.str; default = "TLSv1.2 TLSv1.3"; };
    };
    "nixos/modules/services/databases/postgresql.nix" = {
      options.services.postgresql.enable = mkOption { type = types.bool; default = false; };
    };
  };

in
{
  inherit pkgs utils declarations nixpkgsDefinitions;

  # Every stand-in at once: what scripts/eval-modules and the options doc evaluate with.
  module = {
    imports = lib.attrValues declarations;
  };
}
