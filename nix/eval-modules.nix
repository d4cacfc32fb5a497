# Evaluates msp-flake's modules with nixpkgs' real `lib.evalModules` against the stand-in
# NixOS option declarations in ./stubs.nix (see there for what that does and does not prove),
# and checks what they produce. Run by scripts/eval-modules with NIXPKGS_LIB=<nixpkgs lib dir>.
#
# Returns { checks = [ { name; ok; detail } ]; } ; the script fails when any ok is false.
{ lib }:
let
  stubs = import ./stubs.nix { inherit lib; };

  evalHost =
    modules:
    (lib.evalModules {
      modules = [
        stubs.module
        ../modules
        { _module.args.pkgs = stubs.pkgs; }
      ]
      ++ modules;
    }).config;

  failedAssertions = cfg: map (a: a.message) (builtins.filter (a: !a.assertion) cfg.assertions);

  # What a NixOS build of these hosts evaluates that our definitions meet: forcing it makes a
  # merge error (two values for a unique option) surface instead of hiding in a lazy value.
  forced = import ./force-config.nix { inherit lib; };
  evaluates = cfg: (builtins.tryEval (forced cfg)).success;

  # Stand-ins alone (no msp module), for re-introducing a conflict with nixpkgs' own definitions.
  bare =
    modules:
    (lib.evalModules {
      modules = [
        stubs.module
        { _module.args.pkgs = stubs.pkgs; }
      ]
      ++ modules;
    }).config;

  today = "2026-11-22";
  # Until runbooks/ exists in the checkout, the agent module's default (every runbooks/*.yaml)
  # is empty; stand in two fixture files so the rest can be evaluated (reported by the script).
  haveRunbooks = builtins.pathExists ../runbooks;
  fixtureRunbooks = {
    RB-RESTORE-001 = ../checks/fixtures/runbooks/RB-RESTORE-001.yaml;
    RB-SERVICE-001 = ../checks/fixtures/runbooks/RB-SERVICE-001.yaml;
  };
  dated = {
    msp.baseline.evaluationDate = lib.mkDefault today;
    services.msp-agent.runbooks = lib.mkIf (!haveRunbooks) (lib.mkOverride 1400 fixtureRunbooks);
  };

  hosts = lib.mapAttrs (_: modules: evalHost ([ dated ] ++ modules)) (import ../hosts);

  # A compliant minimal host, used to build the violating variants below.
  minimal = import ../checks/minimal-host.nix;

  violation = import ../checks/violating-host.nix;

  check = name: ok: detail: { inherit name ok detail; };
  contains = needle: msgs: builtins.any (m: lib.hasInfix needle m) msgs;

  agentYaml = cfg: cfg.environment.etc."msp/agent.yaml".source.value;
  agentUnit = cfg: cfg.systemd.services.msp-agent.serviceConfig;

  compliant = evalHost [ minimal dated ];
  violating = evalHost [ minimal dated violation.module ];
  excepted = evalHost [
    minimal
    dated
    violation.module
    { msp.baseline.exceptions = [ (violation.exception // { expires = today; }) ]; }
  ];
  expired = evalHost [
    minimal
    dated
    violation.module
    { msp.baseline.exceptions = [ (violation.exception // { expires = "2026-11-21"; }) ]; }
  ];
  undated = evalHost [
    minimal
    { msp.baseline.evaluationDate = null; }
  ];
  reapplying = evalHost [
    minimal
    dated
    { services.msp-agent.settings.drift.reapply = true; }
  ];
  probeScheduled = evalHost [
    minimal
    dated
    { services.msp-agent.restoreTest.enable = false; }
  ];
  keyInStore = evalHost [
    minimal
    dated
    { services.msp-agent.signingKeyFile = "/nix/store/00000000000000000000000000000000-key/evidence-signing.key"; }
  ];

  # The fleet view (modules/fleet.nix) on an MSP machine: no clinic module enabled.
  fleetHost = modules: evalHost ([ { networking.hostName = "msp-fleet"; } ] ++ modules);
  ownInventory = import ../modules/lib/fleet-inventory.nix {
    nixosConfigurations = lib.mapAttrs (_: config: { inherit config; }) hosts;
    hostsDir = ../hosts;
  };
  fleetTypical = fleetHost [
    {
      services.msp-fleet = {
        enable = true;
        s3CredentialsFile = "/etc/msp-fleet/s3-credentials";
        tokensFile = "/etc/msp-fleet/tokens";
        webhookUrlFile = "/etc/msp-fleet/webhook-url";
        inventory = ownInventory;
        settings.source.s3 = {
          endpoint = "https://s3.us-east-2.amazonaws.com";
          region = "us-east-2";
          bucket = "msp-evidence";
        };
        settings.alerts.page_after_intervals = 6;
      };
    }
  ];
  fleetLocal = extra: fleetHost [
    {
      services.msp-fleet = lib.mkMerge [
        {
          enable = true;
          settings.source.local = "/srv/mirror";
          inventory = "/etc/msp-fleet/inventory.json";
        }
        extra
      ];
    }
  ];
  fleetYaml = cfg: cfg.environment.etc."msp-fleet/fleet.yaml".source.value;
  fleetUnit = cfg: cfg.systemd.services.msp-fleet.serviceConfig;
  fleetFailed = extra: failedAssertions (fleetLocal extra);
  credDir = "/run/credentials/msp-fleet.service";
  # The VM test's node, evaluated as written (runNixOSTest returning its argument).
  fleetVmNode =
    let
      t = import ../checks/vm/fleet.nix {
        self.nixosModules = {
          agent = ../modules/agent.nix;
          fleet = ../modules/fleet.nix;
        };
        pkgs = stubs.pkgs // {
          testers.runNixOSTest = t: t;
        };
      };
    in
    evalHost [
      dated
      t.nodes.machine
    ];
  # nix/package.nix called with a stand-in rustPlatform that returns its arguments (src is
  # not forced: it needs a store).
  packageArgs =
    program:
    import ./package.nix (
      {
        inherit lib;
        rustPlatform.buildRustPackage = a: a;
        openssh = null;
        openssl = null;
        jq = null;
        nix = null;
      }
      // lib.optionalAttrs (program != null) { inherit program; }
    );
in
{
  inherit haveRunbooks;
  # For scripts/check-nix: every typed fleet.yaml key the module declares (to compare with
  # fleet/src/config.rs), and the typical host's fleet.yaml.
  fleetSettingsOptions =
    let
      eval = lib.evalModules {
        modules = [
          stubs.module
          ../modules
          { _module.args.pkgs = stubs.pkgs; }
        ];
      };
      prefix = "services.msp-fleet.settings.";
    in
    map (o: lib.removePrefix prefix o.name) (
      builtins.filter (o: lib.hasPrefix prefix o.name && !o.internal) (lib.optionAttrSetToDocList eval.options)
    );
  fleetTypicalYaml = fleetYaml fleetTypical;
  # For inspection (scripts, debugging): the generated agent.yaml of each example host.
  agentYamls = lib.mapAttrs (_: agentYaml) hosts;
  checks = [
    (check "every example host and the checks' hosts evaluate fully (sysctls, audit, sshd, units, assertions forced)" (
      lib.all evaluates (lib.attrValues hosts ++ [ compliant violating excepted expired reapplying probeScheduled ])
    ) (lib.mapAttrs (_: evaluates) hosts))
    (check "one owner per sysctl: the baseline's values win over nixpkgs' kptr_restrict = mkDefault 1" (
      let
        s = compliant.boot.kernel.sysctl;
      in
      s."kernel.kptr_restrict" == 2
      && s."kernel.dmesg_restrict" == 1
      && s."net.ipv4.tcp_syncookies" == 1
      && s."kernel.yama.ptrace_scope" == 1
      && s."vm.max_map_count" == 1048576
    ) compliant.boot.kernel.sysctl)
    (check "regression: a sysctl defined twice at one priority fails evaluation, even with the same value" (
      !evaluates (evalHost [ minimal dated { boot.kernel.sysctl."kernel.kptr_restrict" = lib.mkOverride 900 2; } ])
      && !evaluates (bare [ { boot.kernel.sysctl."kernel.kptr_restrict" = lib.mkDefault 2; } ])
      && evaluates (bare [ { boot.kernel.sysctl."kernel.kptr_restrict" = lib.mkOverride 900 2; } ])
    ) { })
    (check "regression: mkDefault \"lock\" against auditd's own audit.enable = mkDefault true fails evaluation" (
      !evaluates (bare [ { security.auditd.enable = true; security.audit.enable = lib.mkDefault "lock"; } ])
      && evaluates (bare [ { security.auditd.enable = true; security.audit.enable = lib.mkOverride 900 "lock"; } ])
      && (bare [ { security.auditd.enable = true; } ]).security.audit.enable == true
    ) { })
    (check "audit lock: msp.auditd owns audit.enable; unlocked is the baseline's violation, not a merge error" (
      let
        unlocked = evalHost [ minimal dated { msp.auditd.lock = false; } ];
      in
      compliant.security.audit.enable == "lock"
      && evaluates unlocked
      && unlocked.security.audit.enable == true
      && contains "rule audit.audit_enable " (failedAssertions unlocked)
    ) { })
    (check "audit rules load after tmpfiles and the setuid wrappers; a switch under lock does not restart them" (
      let
        u = compliant.systemd.services;
      in
      lib.all (x: builtins.elem x u.audit-rules-nixos.after) [ "systemd-tmpfiles-setup.service" "suid-sgid-wrappers.service" ]
      && u.audit-rules-nixos.restartIfChanged == false
      && u.msp-audit-rules-pending.restartIfChanged
      && lib.hasInfix "take effect at the next reboot" u.msp-audit-rules-pending.script
      && !((evalHost [ minimal dated { msp.auditd.lock = false; } ]).systemd.services ? msp-audit-rules-pending)
    ) { })
    (check "Tang enrolment: the helper builds without switching, the switch refuses while a JWE is missing" (
      let
        c = hosts.clinic-001-srv-primary;
      in
      c.system.build.mspClevisBind.name == "msp-clevis-bind"
      && lib.hasInfix "/var/lib/msp/clevis/cryptroot.jwe" c.system.preSwitchChecks.msp-luks-tang-enrolled
      && lib.hasInfix "exit 1" c.system.preSwitchChecks.msp-luks-tang-enrolled
    ) { })
    (check "journald: retention in extraConfig on 26.05, in settings.Journal where nixpkgs has it" (
      let
        withSettings = evalHost [
          minimal
          dated
          {
            options.services.journald.settings = lib.mkOption {
              type = lib.types.attrsOf (lib.types.attrsOf lib.types.anything);
              default = { };
            };
          }
        ];
      in
      lib.hasInfix "MaxRetentionSec=2year" compliant.services.journald.extraConfig
      && withSettings.services.journald.settings.Journal.MaxRetentionSec == "2year"
      && withSettings.services.journald.extraConfig == ""
      && failedAssertions withSettings == [ ]
    ) { })
    (check "sshd: CA from key files (no import from derivation) and from key strings" (
      let
        files = evalHost [ minimal dated { msp.sshCa.userCaKeys = lib.mkForce [ ]; msp.sshCa.userCaKeyFiles = [ ../checks/fixtures/runbooks/RB-SERVICE-001.yaml ]; } ];
        none = evalHost [ minimal dated { msp.sshCa.userCaKeys = lib.mkForce [ ]; } ];
      in
      files.environment.etc."ssh/msp_user_ca.pub".source.name == "msp_user_ca.pub"
      && compliant.environment.etc."ssh/msp_user_ca.pub".text != null
      && contains "no user CA key" (failedAssertions none)
    ) { })
    (check "example hosts evaluate with no failed assertion" (
      lib.all (cfg: failedAssertions cfg == [ ]) (lib.attrValues hosts)
    ) (lib.mapAttrs (_: failedAssertions) hosts))
    (check "compliant minimal host has no failed assertion" (failedAssertions compliant == [ ]) (
      failedAssertions compliant
    ))
    (check "violating host fails with the rule, its HIPAA control and the exception process" (
      contains violation.expectedMessage (failedAssertions violating)
      && contains "exception" (failedAssertions violating)
      && contains "baseline/README.md" (failedAssertions violating)
    ) (failedAssertions violating))
    (check "exception expiring today is valid (no failure, one warning)" (
      failedAssertions excepted == [ ] && contains violation.exception.id excepted.warnings
    ) { inherit (excepted) warnings; failed = failedAssertions excepted; })
    (check "exception that expired yesterday fails the build and says so" (
      contains "${violation.exception.id} expired on 2026-11-21" (failedAssertions expired)
    ) (failedAssertions expired))
    (check "no evaluation date fails the build instead of skipping expiry" (
      contains "msp.baseline.evaluationDate is not set" (failedAssertions undated)
    ) (failedAssertions undated))
    (check "signing key in the Nix store is refused" (contains "world-readable" (failedAssertions keyInStore)) (
      failedAssertions keyInStore
    ))
    (check "agent.yaml has client_id, hashes of every approved runbook, no nulls" (
      let
        y = agentYaml compliant;
      in
      y.client_id == "clinic-test"
      && y.approved_runbooks == lib.mapAttrs (_: f: builtins.hashFile "sha256" f) compliant.services.msp-agent.runbooks
      && !(y ? signing_key_file)
      && y.evidence_dir == "/var/lib/msp/evidence"
      && y.client_permissions == lib.mapAttrs (_: _: "auto") y.approved_runbooks
      && !(y ? worm)
      # Unset probe options are absent; only the restore-test switch the timer sets and the
      # host's restic backups (for the backup-age check) are there.
      && y.probes == {
        restore_test.enabled = false;
        backup_age.units = map (n: "restic-backups-${n}.service") (lib.attrNames compliant.services.restic.backups);
      }
      # The agent enforces the values of the baseline file the host was built with.
      && y.baseline.file == "${../baseline/hipaa-v1.yaml}"
      && y.baseline.sha256 == builtins.hashFile "sha256" ../baseline/hipaa-v1.yaml
    ) (agentYaml compliant))
    (check "agent.yaml worm section appears only when an endpoint is set" (
      let
        y = agentYaml hosts.clinic-001-srv-primary;
      in
      y.worm.bucket == "msp-evidence-clinic-001"
      && !(y.worm ? prefix)
      && y.worm.credentials_file == "/run/credentials/msp-agent.service/worm-credentials"
      && hosts.clinic-001-srv-primary.systemd.services.msp-agent.serviceConfig.LoadCredential == [
        "evidence-signing.key:/etc/msp/signing-keys/evidence-signing.key"
        "worm-credentials:/etc/msp/worm-credentials"
      ]
    ) (agentYaml hosts.clinic-001-srv-primary))
    (check "agent unit: Type=notify, watchdog, key as a credential (not in the store)" (
      let
        u = agentUnit compliant;
      in
      u.Type == "notify"
      && u.WatchdogSec == 60
      && u.LoadCredential == [ "evidence-signing.key:/etc/msp/signing-keys/evidence-signing.key" ]
      && u.NoNewPrivileges
      && u.UMask == "0077"
      && lib.hasSuffix "run --config /etc/msp/agent.yaml" u.ExecStart
    ) (agentUnit compliant))
    (check "one restore-test schedule: the timer turns the daemon's probe off, and back on without it" (
      (agentYaml compliant).probes.restore_test.enabled == false
      && !((agentYaml probeScheduled) ? probes && (agentYaml probeScheduled).probes ? restore_test)
      && !(probeScheduled.systemd.timers ? msp-agent-restore-test)
    ) ((agentYaml compliant).probes or null))
    (check "drift.reapply lifts the daemon's file-system sandbox (switch-to-configuration writes /etc), jobs keep it" (
      (agentUnit reapplying).ProtectSystem == false
      && (agentUnit reapplying).ProtectKernelTunables == false
      && (agentUnit compliant).ProtectSystem == "full"
      && reapplying.systemd.services.msp-agent-packet.serviceConfig.ProtectSystem == "full"
    ) (agentUnit reapplying))
    (check "weekly restore test and monthly packet timers" (
      compliant.systemd.timers.msp-agent-restore-test.timerConfig.OnCalendar == "Sun *-*-* 03:00:00"
      && compliant.systemd.timers.msp-agent-packet.timerConfig.OnCalendar == "*-*-01 06:00:00"
      && compliant.systemd.services.msp-agent-packet.serviceConfig.LoadCredential
        == (agentUnit compliant).LoadCredential
    ) { })
    (check "ops timers: daily verify (alerts on failure), daily prune, monthly WORM restore test only with an endpoint" (
      let
        svc = compliant.systemd.services;
      in
      compliant.systemd.timers.msp-agent-evidence-verify.timerConfig.OnCalendar == "*-*-* 05:00:00"
      && compliant.systemd.timers.msp-agent-evidence-prune.timerConfig.OnCalendar == "*-*-* 04:30:00"
      && svc.msp-agent-evidence-prune.serviceConfig.LoadCredential == (agentUnit compliant).LoadCredential
      && (compliant.services.msp-agent.worm.endpoint == null) == !(compliant.systemd.timers ? msp-agent-worm-restore-test)
      && hosts.clinic-001-srv-primary.systemd.timers.msp-agent-worm-restore-test.timerConfig.OnCalendar == "*-*-02 04:00:00"
    ) { })
    (check "sshd: certificates only, principals per user, no passwords" (
      let
        s = compliant.services.openssh.settings;
      in
      s.PasswordAuthentication == false
      && s.KbdInteractiveAuthentication == false
      && s.PermitRootLogin == "no"
      && s.TrustedUserCAKeys == "/etc/ssh/msp_user_ca.pub"
      && s.AuthorizedPrincipalsFile == "/etc/ssh/authorized_principals.d/%u"
      && compliant.users.users.admin.openssh.authorizedPrincipals == [ "msp-oncall" ]
    ) compliant.services.openssh.settings)
    (check "primary host: LUKS device unlocked by clevis/Tang in a systemd initrd with network" (
      let
        c = hosts.clinic-001-srv-primary;
      in
      c.boot.initrd.systemd.enable
      && c.boot.initrd.clevis.enable
      && c.boot.initrd.clevis.useTang
      && c.boot.initrd.clevis.devices.cryptroot.secretFile == "/var/lib/msp/clevis/cryptroot.jwe"
      && c.boot.initrd.luks.devices.cryptroot.device == "/dev/disk/by-uuid/0f7c1b52-54a8-4a37-9b2c-2f0e2c1c9a11"
      && c.boot.initrd.systemd.network.enable
    ) { })
    (check "auditd enabled with rules" (
      compliant.security.auditd.enable
      && compliant.security.audit.enable == "lock"
      && compliant.security.audit.rules == lib.unique compliant.security.audit.rules
      && builtins.elem "-w /etc/passwd -p wa -k identity" compliant.security.audit.rules
    ) compliant.security.audit.rules)
    (check "baseline installs the drift manifest and the loaded audit rules, and points the agent at it" (
      compliant.environment.etc."msp/expected-state.json".source.name == "msp-expected-state.json"
      && (agentYaml compliant).baseline.manifest == "/etc/msp/expected-state.json"
      && compliant.environment.etc."audit/audit.rules".text == lib.concatLines compliant.security.audit.rules
    ) { })
    (check "clinic-001: its two rendered exceptions are in force, clinic-002 needs none" (
      let
        statuses = cfg: lib.listToAttrs (map (r: lib.nameValuePair r.rule r.status) cfg.msp.baseline.results);
        s1 = statuses hosts.clinic-001-srv-primary;
        s2 = statuses hosts.clinic-002-srv-01;
      in
      s1."ssh.client_alive_interval_seconds" == "excepted"
      && s1."firewall.allowed_tcp_ports" == "excepted"
      && lib.all (s: s == "compliant") (lib.attrValues s2)
      && lib.length (lib.attrNames s2) > 30
    ) (lib.mapAttrs (_: cfg: lib.filter (r: r.status != "compliant") cfg.msp.baseline.results) hosts))
    (check "every enforced baseline rule is checked on the hosts, except LUKS cipher and key size" (
      let
        rendered = import ../baseline/rendered/baseline.nix;
        enforced = lib.concatMap (sec: lib.filter (r: r.enforce) (lib.attrValues sec)) (lib.attrValues rendered.rules);
        checkedRules = map (r: r.rule) hosts.clinic-002-srv-01.msp.baseline.results;
      in
      lib.sort lib.lessThan (lib.subtractLists checkedRules (map (r: r.key) enforced)) == [
        "encryption.luks_cipher"
        "encryption.luks_key_size_bits"
      ]
    ) (map (r: r.rule) hosts.clinic-002-srv-01.msp.baseline.results))
    (check "nixosModules.baseline works on its own (it imports what it reads)" (
      let
        alone =
          (lib.evalModules {
            modules = [
              stubs.module
              ../modules/baseline.nix
              { _module.args.pkgs = stubs.pkgs; }
              dated
              {
                msp.baseline.enable = true;
                msp.baseline.clientId = "clinic-test";
              }
            ];
          }).config;
      in
      contains "rule encryption.data_volumes_luks " (failedAssertions alone)
    ) { })
    (check "a host without LUKS, Tang or backups fails on those rules" (
      let
        bare = evalHost [
          minimal
          dated
          {
            msp.luksTang.enable = lib.mkForce false;
            services.restic.backups = lib.mkForce { };
          }
        ];
        failed = failedAssertions bare;
      in
      lib.all (k: contains "rule ${k} " failed) [
        "encryption.data_volumes_luks"
        "encryption.network_bound_unlock"
        "encryption.tang_min_servers"
        "backup.schedule"
        "backup.encrypted"
      ]
    ) { })
    (check "fleet.yaml for a typical S3 config: exactly the keys fleet/src/config.rs reads, secrets as credential paths, unset keys absent" (
      fleetYaml fleetTypical == {
        source.s3 = {
          endpoint = "https://s3.us-east-2.amazonaws.com";
          region = "us-east-2";
          bucket = "msp-evidence";
          credentials_file = "${credDir}/s3-credentials";
        };
        index = "/var/lib/msp-fleet/index.sqlite";
        inventory = "/nix/store/00000000000000000000000000000000-msp-fleet-inventory.json";
        listen = "127.0.0.1:8427";
        auth.tokens_file = "${credDir}/tokens";
        alerts = {
          webhook_url_file = "${credDir}/webhook-url";
          page_after_intervals = 6;
        };
      }
      && fleetTypical.environment.etc."msp-fleet/fleet.yaml".source.name == "msp-fleet.yaml"
    ) (fleetYaml fleetTypical))
    (check "fleet inventory: the generated value is the JSON file fleet.yaml names; this flake's hosts in it" (
      (fleetYaml fleetTypical).inventory == (stubs.pkgs.writeText "msp-fleet-inventory.json" "").outPath
      && fleetTypical.services.msp-fleet.inventory == ownInventory
      && ownInventory == {
        version = 1;
        clients = [
          { id = "clinic-001"; hosts = [ { id = "clinic-001-srv-primary"; heartbeat_interval_seconds = 900; keys = [ ]; } ]; }
          { id = "clinic-002"; hosts = [ { id = "clinic-002-srv-01"; heartbeat_interval_seconds = 900; keys = [ ]; } ]; }
        ];
      }
    ) ownInventory)
    (check "fleet.yaml for a local mirror: source.local, prefix only when set, an inventory path used as given" (
      fleetYaml (fleetLocal { }) == {
        source.local = "/srv/mirror";
        index = "/var/lib/msp-fleet/index.sqlite";
        inventory = "/etc/msp-fleet/inventory.json";
        listen = "127.0.0.1:8427";
      }
      && (fleetYaml (fleetLocal { settings.source.prefix = "evidence"; settings.poll_interval_seconds = 60; })).source
        == { local = "/srv/mirror"; prefix = "evidence"; }
      && (fleetYaml (fleetLocal { settings.poll_interval_seconds = 60; })).poll_interval_seconds == 60
      && failedAssertions (fleetLocal { }) == [ ]
    ) (fleetYaml (fleetLocal { })))
    (check "fleet unit: check-config before serve, both on the generated fleet.yaml; LoadCredential for each secret given" (
      let
        u = fleetUnit fleetTypical;
        cfgPath = fleetTypical.environment.etc."msp-fleet/fleet.yaml".source.outPath;
      in
      u.ExecStartPre == "/nix/store/00000000000000000000000000000000-msp-fleet-0.1.0/bin/msp-fleet check-config --config ${cfgPath}"
      && u.ExecStart == "/nix/store/00000000000000000000000000000000-msp-fleet-0.1.0/bin/msp-fleet serve --config ${cfgPath}"
      && u.LoadCredential == [
        "s3-credentials:/etc/msp-fleet/s3-credentials"
        "tokens:/etc/msp-fleet/tokens"
        "webhook-url:/etc/msp-fleet/webhook-url"
      ]
      && (fleetUnit (fleetLocal { })).LoadCredential == [ ]
      && fleetTypical.systemd.services.msp-fleet.wantedBy == [ "multi-user.target" ]
    ) (fleetUnit fleetTypical))
    (check "fleet unit hardening: dynamic user, state directory, strict sandbox, no capabilities" (
      let
        u = fleetUnit fleetTypical;
      in
      u.DynamicUser == true
      && u.StateDirectory == "msp-fleet"
      && u.StateDirectoryMode == "0700"
      && u.UMask == "0077"
      && u.ProtectSystem == "strict"
      && u.ProtectHome == true
      && u.PrivateTmp && u.PrivateDevices && u.NoNewPrivileges
      && u.CapabilityBoundingSet == "" && u.AmbientCapabilities == ""
      && u.RestrictAddressFamilies == [ "AF_INET" "AF_INET6" "AF_UNIX" ]
      && u.SystemCallFilter == [ "@system-service" "~@privileged" ]
      && u.SystemCallArchitectures == "native"
      && u.MemoryDenyWriteExecute && u.LockPersonality && u.RestrictNamespaces
      && u.ProtectKernelTunables && u.ProtectKernelModules && u.ProtectKernelLogs && u.ProtectControlGroups
      && u.ProtectClock && u.ProtectHostname && u.RestrictRealtime && u.RestrictSUIDSGID && u.PrivateUsers
    ) (fleetUnit fleetTypical))
    (check "fleet unit: a port below 1024 gets CAP_NET_BIND_SERVICE only (and no user namespace, which would void it)" (
      let
        u = fleetUnit (fleetLocal { settings.listen = "[::]:443"; tokensFile = "/etc/msp-fleet/tokens"; });
      in
      u.CapabilityBoundingSet == [ "CAP_NET_BIND_SERVICE" ]
      && u.AmbientCapabilities == [ "CAP_NET_BIND_SERVICE" ]
      && u.PrivateUsers == false
    ) { })
    (check "fleet firewall: closed by default, openFirewall opens the listen port" (
      !(builtins.elem 8427 (fleetLocal { }).networking.firewall.allowedTCPPorts)
      && (fleetLocal { openFirewall = true; settings.listen = "0.0.0.0:8443"; tokensFile = "/etc/msp-fleet/tokens"; }).networking.firewall.allowedTCPPorts == [ 8443 ]
      && (fleetLocal { openFirewall = true; settings.listen = "[2001:db8::1]:9000"; tokensFile = "/etc/msp-fleet/tokens"; }).networking.firewall.allowedTCPPorts == [ 9000 ]
    ) { })
    (check "fleet assertions: exactly one source; s3 needs s3CredentialsFile" (
      let
        both = fleetFailed { settings.source.s3 = { endpoint = "https://s3"; region = "r"; bucket = "b"; }; s3CredentialsFile = "/etc/c"; };
        neither = failedAssertions (fleetHost [ { services.msp-fleet = { enable = true; inventory = "/etc/i.json"; }; } ]);
        s3NoCreds = failedAssertions (fleetHost [
          { services.msp-fleet = { enable = true; inventory = "/etc/i.json"; settings.source.s3 = { endpoint = "https://s3"; region = "r"; bucket = "b"; }; }; }
        ]);
      in
      contains "set exactly one of `s3` (the bucket) and `local`" both
      && contains "set exactly one of `s3` (the bucket) and `local`" neither
      && contains "s3CredentialsFile is not" s3NoCreds
      && !(contains "set exactly one" s3NoCreds)
      && failedAssertions fleetTypical == [ ]
    ) { })
    (check "fleet assertions: a non-loopback listen address needs tokensFile; loopback does not" (
      let
        needsTokens = l: contains "is not a loopback address, but services.msp-fleet.tokensFile is not set" (fleetFailed { settings.listen = l; });
      in
      lib.all needsTokens [ "0.0.0.0:8427" "[::]:8427" "10.0.0.5:8427" "[2001:db8::1]:8427" "128.0.0.1:8427" ]
      && lib.all (l: fleetFailed { settings.listen = l; } == [ ]) [ "127.0.0.1:8427" "127.0.0.2:9000" "[::1]:8427" ]
      && fleetFailed { settings.listen = "0.0.0.0:8427"; tokensFile = "/etc/msp-fleet/tokens"; } == [ ]
      && contains "is not an address and port" (fleetFailed { settings.listen = "localhost:8427"; })
      && contains "is not an address and port" (fleetFailed { settings.listen = "127.0.0.1:70000"; })
      && contains "is not an address and port" (fleetFailed { settings.listen = "127.0.0.1:0"; })
    ) { })
    (check "fleet assertions: secrets outside the store, an inventory, warn < page" (
      contains "services.msp-fleet.tokensFile points into the Nix store" (
        fleetFailed { tokensFile = "/nix/store/00000000000000000000000000000000-tokens"; }
      )
      && contains "services.msp-fleet.inventory is not set" (
        failedAssertions (fleetHost [ { services.msp-fleet = { enable = true; settings.source.local = "/srv/m"; }; } ])
      )
      && contains "warn_after_intervals must be less than page_after_intervals" (
        fleetFailed { settings.alerts = { warn_after_intervals = 4; page_after_intervals = 4; }; }
      )
      && fleetFailed { settings.alerts = { warn_after_intervals = 3; page_after_intervals = 4; }; } == [ ]
    ) { })
    (check "fleet: off on the clinic hosts (imported by nixosModules.default, never enabled), works on its own" (
      lib.all (cfg: !cfg.services.msp-fleet.enable && !(cfg.systemd.services ? msp-fleet)) (lib.attrValues hosts ++ [ compliant ])
      && (lib.evalModules {
        modules = [
          stubs.module
          ../modules/fleet.nix
          { _module.args.pkgs = stubs.pkgs; }
          { services.msp-fleet = { enable = true; settings.source.local = "/srv/m"; inventory = "/etc/i.json"; }; }
        ];
      }).config.systemd.services.msp-fleet.serviceConfig.DynamicUser
    ) { })
    (check "fleet: a host value merges with the module's unit as nixpkgs' unitOption does (lists concatenate, atoms conflict)" (
      let
        extra = fleetHost [
          { services.msp-fleet = { enable = true; settings.source.local = "/srv/m"; inventory = "/etc/i.json"; }; }
          { systemd.services.msp-fleet.serviceConfig.RestrictAddressFamilies = [ "AF_NETLINK" ]; }
        ];
        conflicting = fleetHost [
          { services.msp-fleet = { enable = true; settings.source.local = "/srv/m"; inventory = "/etc/i.json"; }; }
          { systemd.services.msp-fleet.serviceConfig.ProtectSystem = "full"; }
        ];
      in
      lib.sort lib.lessThan (fleetUnit extra).RestrictAddressFamilies == [ "AF_INET" "AF_INET6" "AF_NETLINK" "AF_UNIX" ]
      && !(builtins.tryEval (builtins.deepSeq (fleetUnit conflicting) true)).success
      && (fleetUnit (fleetHost [
        { services.msp-fleet = { enable = true; settings.source.local = "/srv/m"; inventory = "/etc/i.json"; }; }
        { systemd.services.msp-fleet.serviceConfig.ProtectSystem = lib.mkForce "full"; }
      ])).ProtectSystem == "full"
    ) { })
    (check "fleet VM test node evaluates: agent and fleet on one machine, local mirror, token file as a credential" (
      evaluates fleetVmNode
      && failedAssertions fleetVmNode == [ ]
      && (fleetYaml fleetVmNode).source.local == "/srv/mirror"
      && (fleetYaml fleetVmNode).inventory == "/var/lib/fleet-test/inventory.json"
      && (fleetUnit fleetVmNode).LoadCredential == [ "tokens:/etc/msp-fleet/tokens" ]
      && fleetVmNode.systemd.services.msp-fleet.wantedBy == [ ]
    ) (failedAssertions fleetVmNode))
    (check "nix/package.nix: msp-agent by default, msp-fleet with program = \"msp-fleet\" (its own -p, version from the workspace)" (
      let
        agent = packageArgs null;
        fleet = packageArgs "msp-fleet";
      in
      agent.pname == "msp-agent"
      && agent.cargoBuildFlags == [ "--package" "msp-agent" ]
      && lib.take 3 agent.cargoTestFlags == [ "--package" "msp-agent" "--lib" ]
      && builtins.elem "fuzz" agent.cargoTestFlags
      && fleet.pname == "msp-fleet"
      && fleet.cargoBuildFlags == [ "--package" "msp-fleet" ]
      && fleet.cargoTestFlags == [ "--package" "msp-fleet" "--lib" ]
      && fleet.meta.mainProgram == "msp-fleet"
      && fleet.version == (lib.importTOML ../Cargo.toml).workspace.package.version
      && agent.version == fleet.version
      && !(builtins.tryEval (packageArgs "msp-nothing").pname).success
    ) { agent = (packageArgs null).version; })
  ];
}
