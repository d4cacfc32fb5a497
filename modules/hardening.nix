# msp.hardening: the host-wide settings the baseline asks for that have no module of their own:
# journald retention, time sync (chrony), firewall, kernel sysctls, sudo, UTC. The baseline
# module sets (and asserts) the rules that name a NixOS option; this module enforces the ones
# that do not (journald retention and size) and adds hardening beyond the baseline.
# Values are mkDefault: the baseline module asserts the enforced ones, so a host that sets a
# contrary value gets the baseline's message (rule, HIPAA control, exception process).
{
  config,
  lib,
  ...
}:
let
  cfg = config.msp.hardening;
  # Baseline values that have no single NixOS option (enforced here, not by an assertion).
  rules = (import ../baseline/rendered/baseline.nix).rules;
in
{
  options.msp.hardening = {
    enable = lib.mkEnableOption "the msp-flake host hardening (journald, chrony, firewall, sysctl, sudo)";

    journalRetention = lib.mkOption {
      type = lib.types.strMatching "[0-9]+(s|min|h|day|week|month|year)";
      default = rules.logging.journald_max_retention.value;
      defaultText = lib.literalExpression "the baseline's logging.journald_max_retention";
      description = "How long journald keeps entries (MaxRetentionSec); evidence summarises them, the journal backs it.";
    };

    journalMaxUse = lib.mkOption {
      type = lib.types.strMatching "[0-9]+[KMGT]?";
      default = rules.logging.journald_system_max_use.value;
      defaultText = lib.literalExpression "the baseline's logging.journald_system_max_use";
      description = "Disk space the journal may use (SystemMaxUse).";
    };

    ntpServers = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [
        "0.nixos.pool.ntp.org"
        "1.nixos.pool.ntp.org"
        "2.nixos.pool.ntp.org"
      ];
      description = "Time servers for chrony. Accurate time is what makes evidence timestamps and audit records comparable.";
    };
  };

  config = lib.mkIf cfg.enable {
    services.journald = {
      storage = lib.mkDefault "persistent";
      extraConfig = ''
        MaxRetentionSec=${cfg.journalRetention}
        SystemMaxUse=${cfg.journalMaxUse}
        Compress=yes
      '';
    };

    services.timesyncd.enable = false;
    services.chrony = {
      enable = true;
      servers = cfg.ntpServers;
    };

    networking.firewall = {
      enable = lib.mkDefault true;
      allowPing = lib.mkDefault true;
      logRefusedConnections = lib.mkDefault true;
    };

    security.sudo.execWheelOnly = lib.mkDefault true;
    time.timeZone = lib.mkDefault "UTC";

    boot.kernel.sysctl = {
      "kernel.kptr_restrict" = lib.mkDefault 2;
      "kernel.dmesg_restrict" = lib.mkDefault 1;
      "kernel.unprivileged_bpf_disabled" = lib.mkDefault 1;
      "kernel.yama.ptrace_scope" = lib.mkDefault 1;
      "net.core.bpf_jit_harden" = lib.mkDefault 2;
      "fs.protected_hardlinks" = lib.mkDefault 1;
      "fs.protected_symlinks" = lib.mkDefault 1;
      "fs.suid_dumpable" = lib.mkDefault 0;
      "net.ipv4.conf.all.rp_filter" = lib.mkDefault 1;
      "net.ipv4.conf.default.rp_filter" = lib.mkDefault 1;
      "net.ipv4.conf.all.accept_redirects" = lib.mkDefault 0;
      "net.ipv4.conf.default.accept_redirects" = lib.mkDefault 0;
      "net.ipv6.conf.all.accept_redirects" = lib.mkDefault 0;
      "net.ipv6.conf.default.accept_redirects" = lib.mkDefault 0;
      "net.ipv4.conf.all.send_redirects" = lib.mkDefault 0;
      "net.ipv4.conf.all.accept_source_route" = lib.mkDefault 0;
      "net.ipv6.conf.all.accept_source_route" = lib.mkDefault 0;
      "net.ipv4.tcp_syncookies" = lib.mkDefault 1;
      "net.ipv4.icmp_echo_ignore_broadcasts" = lib.mkDefault 1;
    };
  };
}
