# msp.auditd: the Linux audit subsystem with the baseline's rules, and auditd writing them to
# disk with rotation that never silently drops records (HIPAA §164.312(b), audit controls).
{
  config,
  lib,
  ...
}:
let
  cfg = config.msp.auditd;
in
{
  options.msp.auditd = {
    enable = lib.mkEnableOption "auditd with the msp-flake baseline's audit rules";

    rules = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [
        # Accounts and privileges.
        "-w /etc/passwd -p wa -k msp-identity"
        "-w /etc/group -p wa -k msp-identity"
        "-w /etc/shadow -p wa -k msp-identity"
        "-w /etc/sudoers -p wa -k msp-privilege"
        # Remote access configuration.
        "-w /etc/ssh/sshd_config -p wa -k msp-sshd"
        # The agent's configuration, keys and evidence.
        "-w /etc/msp -p wa -k msp-agent-config"
        "-w /var/lib/msp/evidence -p wa -k msp-evidence"
        # Clock changes break evidence timestamps.
        "-a always,exit -F arch=b64 -S adjtimex,settimeofday,clock_settime -k msp-time"
        # Kernel modules.
        "-a always,exit -F arch=b64 -S init_module,finit_module,delete_module -k msp-modules"
        # Commands run as root by a logged-in person (not by daemons).
        "-a always,exit -F arch=b64 -S execve -F euid=0 -F auid>=1000 -F auid!=unset -k msp-root-exec"
      ];
      description = ''
        Audit rules (auditctl syntax), loaded at boot. The baseline module adds the baseline's
        own rules on top and asserts they are present.
      '';
    };

    lock = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = ''
        Lock the audit configuration until reboot (`auditctl -e 2`). Stronger, but every rule
        change then needs a reboot, so `nixos-rebuild switch` cannot apply new rules.
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    security.audit = {
      enable = if cfg.lock then "lock" else true;
      # Log to the kernel ring buffer (and so the journal) when the backlog overflows, rather
      # than panic a clinic's only server.
      failureMode = lib.mkDefault "printk";
      backlogLimit = lib.mkDefault 8192;
      rules = cfg.rules;
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
