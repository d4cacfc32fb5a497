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
in
{
  inherit haveRunbooks;
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
  ];
}
