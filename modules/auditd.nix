# msp.auditd: the Linux audit subsystem with the baseline's rules, and auditd writing them to
# disk with rotation that never silently drops records (HIPAA §164.312(b), audit controls).
{
  config,
  lib,
  ...
}:
let
  cfg = config.msp.auditd;
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
        even root cannot change or stop auditing. Every rule change then needs a reboot;
        `nixos-rebuild switch` cannot apply new rules to the running kernel.
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    security.audit = {
      enable = lib.mkDefault (if cfg.lock then "lock" else true);
      # Log to the kernel ring buffer (and so the journal) when the backlog overflows, rather
      # than panic a clinic's only server.
      failureMode = lib.mkDefault "printk";
      backlogLimit = lib.mkDefault 8192;
      rules = cfg.rules ++ cfg.extraRules;
    };

    # Watched directories must exist before the rules load, or auditctl rejects the rule.
    systemd.tmpfiles.rules = [
      "d /etc/msp 0755 root root -"
      "d /etc/msp/signing-keys 0700 root root -"
    ];

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
