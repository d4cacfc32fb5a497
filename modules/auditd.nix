# msp.auditd: the Linux audit subsystem with the baseline's rules, and auditd writing them to
# disk with rotation that never silently drops records (HIPAA §164.312(b), audit controls).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.msp.auditd;
  baselineLib = import ./lib/baseline.nix;
  auditctl = "${config.security.audit.package or pkgs.audit}/bin/auditctl";

  # The rules this generation would load, for telling a locked kernel's rules from them.
  rulesFile = pkgs.writeText "msp-audit.rules" (lib.concatLines config.security.audit.rules);

  # Under lock (`auditctl -e 2`) the kernel refuses every rule change until reboot, so
  # nixpkgs' audit-rules-nixos.service (`auditctl -R`) would fail on every switch that
  # changes the rules, and with it `nixos-rebuild switch` and RB-DRIFT-001's re-apply. That
  # unit is therefore not restarted on switch (restartIfChanged = false); this one is, and
  # says in the journal whether the running kernel has this generation's rules or keeps the
  # booted ones until the next reboot (it records the booted rules' hash at boot).
  pendingScript = ''
    booted=/run/msp/audit-rules.booted.sha256
    new=$(${pkgs.coreutils}/bin/sha256sum < ${rulesFile} | ${pkgs.coreutils}/bin/cut -d' ' -f1)
    ${pkgs.coreutils}/bin/mkdir -p /run/msp
    if [ ! -e "$booted" ]; then
      printf '%s\n' "$new" > "$booted"
      echo "msp-auditd: audit rules $new loaded at boot"
      exit 0
    fi
    if [ "$(${pkgs.coreutils}/bin/cat "$booted")" = "$new" ]; then
      # Back to the booted rules (e.g. a rollback): nothing is pending any more.
      ${pkgs.coreutils}/bin/rm -f /run/msp/audit-rules.pending.sha256
      echo "msp-auditd: the running kernel has this generation's audit rules ($new)"
      exit 0
    fi
    if ${auditctl} -s | ${pkgs.gnugrep}/bin/grep -qx 'enabled 2'; then
      echo "msp-auditd: audit rules changed to $new, but auditing is locked (enabled 2): the kernel keeps the rules loaded at boot ($(${pkgs.coreutils}/bin/cat "$booted")) and the new rules take effect at the next reboot" >&2
      printf '%s\n' "$new" > /run/msp/audit-rules.pending.sha256
    else
      echo "msp-auditd: audit rules changed to $new; auditing is not locked yet: they load at the next reboot (or now: systemctl restart audit-rules-nixos.service)"
    fi
    exit 0
  '';
  # The baseline's own audit rules (rule audit.rules), so this module loads exactly what the
  # baseline asserts.
  rendered = import ../baseline/rendered/baseline.nix;
  baselineRules = rendered.rules.audit.rules.value;
in
{
  options.msp.auditd = {
    enable = lib.mkEnableOption "auditd with the msp-flake baseline's audit rules";

    rules = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = baselineRules;
      defaultText = lib.literalExpression "the baseline's audit rules (baseline/rendered/baseline.nix, rule audit.rules)";
      description = "Audit rules (auditctl syntax) loaded at boot: the baseline's.";
    };

    extraRules = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      example = [ "-w /var/lib/postgresql -p wa -k database" ];
      description = "Audit rules for this host, loaded after the baseline's.";
    };

    lock = lib.mkOption {
      type = lib.types.bool;
      default = rendered.rules.audit.audit_enable.value == "lock";
      defaultText = lib.literalExpression "true, as the baseline's audit.audit_enable = \"lock\"";
      description = ''
        Lock the audit configuration until reboot (`auditctl -e 2`), as the baseline requires:
        even root cannot change or stop auditing. Every rule change then needs a reboot:
        `nixos-rebuild switch` still succeeds, keeps the rules loaded at boot, and
        `msp-audit-rules-pending.service` logs that the new rules take effect at the next
        reboot.
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    security.audit = {
      # The baseline's priority (900): above nixpkgs' own `security.audit.enable = mkDefault
      # true` (auditd.nix), which "lock" at mkDefault would conflict with; below a host's value.
      enable = lib.mkOverride baselineLib.priority (if cfg.lock then "lock" else true);
      # Log to the kernel ring buffer (and so the journal) when the backlog overflows, rather
      # than panic a clinic's only server.
      failureMode = lib.mkDefault "printk";
      backlogLimit = lib.mkDefault 8192;
      rules = cfg.rules ++ cfg.extraRules;
    };

    # Watched directories must exist before the rules load, or auditctl rejects the rule and,
    # as `auditctl -R` stops at the first failing rule, every rule after it (including the
    # final `-e 2` lock) is never loaded: /etc/msp/signing-keys (tmpfiles) and
    # /run/wrappers/bin (the privileged-command rules, made by suid-sgid-wrappers.service).
    # Both units run before sysinit.target like audit-rules-nixos, so ordering after them
    # adds no cycle.
    systemd.tmpfiles.rules = [
      "d /etc/msp 0755 root root -"
      "d /etc/msp/signing-keys 0700 root root -"
    ];
    systemd.services.audit-rules-nixos = {
      after = [
        "systemd-tmpfiles-setup.service"
        "suid-sgid-wrappers.service"
      ];
      wants = [ "suid-sgid-wrappers.service" ];
      # Under lock a restart cannot load new rules and its stop (`auditctl -e 0`, `-D`) fails:
      # not restarted on switch; msp-audit-rules-pending says what applies when.
      restartIfChanged = lib.mkIf (config.security.audit.enable == "lock") false;
    };
    systemd.services.msp-audit-rules-pending = lib.mkIf (config.security.audit.enable == "lock") {
      description = "msp-auditd: report audit rules that wait for a reboot (audit locked)";
      wantedBy = [ "multi-user.target" ];
      after = [ "audit-rules-nixos.service" ];
      restartTriggers = [ rulesFile ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
      };
      script = pendingScript;
    };

    security.auditd = {
      enable = true;
      settings = {
        log_format = lib.mkDefault "ENRICHED";
        max_log_file = lib.mkDefault 50; # MiB
        num_logs = lib.mkDefault 10;
        max_log_file_action = lib.mkDefault "ROTATE";
        space_left = lib.mkDefault "25%";
        admin_space_left = lib.mkDefault "10%";
        space_left_action = lib.mkDefault "SYSLOG";
        # Stop writing rather than lose records silently; the agent's disk probe fires first.
        admin_space_left_action = lib.mkDefault "SUSPEND";
        disk_full_action = lib.mkDefault "SUSPEND";
        disk_error_action = lib.mkDefault "SUSPEND";
      };
    };
  };
}
