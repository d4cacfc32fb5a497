# msp.hardening: the host-wide settings the baseline asks for that have no module of their own:
# journald retention, time sync (chrony), firewall, kernel sysctls, sudo, UTC. The baseline
# module sets (and asserts) the rules that name a NixOS option; this module enforces the ones
# that do not (journald retention and size) and adds hardening beyond the baseline.
# Values are mkDefault (sysctls: the baseline's priority, 900, see below): the baseline module
# asserts the enforced ones, so a host that sets a contrary value gets the baseline's message
# (rule, HIPAA control, exception process).
{
  config,
  options,
  lib,
  ...
}:
let
  cfg = config.msp.hardening;
  journaldLib = import ./lib/journald.nix;
  journal = {
    MaxRetentionSec = cfg.journalRetention;
    SystemMaxUse = cfg.journalMaxUse;
    Compress = true;
  };
  # Baseline values that have no single NixOS option (enforced here, not by an assertion).
  rendered = import ../baseline/rendered/baseline.nix;
  inherit (rendered) rules;
  baselineLib = import ./lib/baseline.nix;

  # Hardening beyond the baseline: sysctl keys no baseline rule names (checked in CI by
  # checks/lib/unique-defs.nix: none may also be a baseline key).
  extraSysctls = {
    "kernel.yama.ptrace_scope" = 1;
    "net.core.bpf_jit_harden" = 2;
    "fs.protected_hardlinks" = 1;
    "net.ipv4.conf.default.rp_filter" = 1;
    "net.ipv4.conf.default.accept_redirects" = 0;
    "net.ipv6.conf.all.accept_redirects" = 0;
    "net.ipv6.conf.default.accept_redirects" = 0;
    "net.ipv4.conf.all.send_redirects" = 0;
    "net.ipv4.conf.all.accept_source_route" = 0;
    "net.ipv6.conf.all.accept_source_route" = 0;
    "net.ipv4.icmp_echo_ignore_broadcasts" = 1;
  };
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
    # nixpkgs 26.05 takes journald.conf lines in services.journald.extraConfig; later releases
    # remove it for services.journald.settings.Journal (26.11 release notes). Whichever this
    # nixpkgs declares is used (modules/lib/journald.nix), so the module works on both.
    services.journald = {
      storage = lib.mkDefault "persistent";
    }
    // (
      if journaldLib.hasSettings options then
        { settings.Journal = journal; }
      else
        { extraConfig = journaldLib.toLines journal; }
    );

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

    # One owner per sysctl key: nixpkgs merges each key with mergeOneOption, so two
    # definitions at the winning priority fail evaluation even when equal. The keys the
    # baseline names are defined by msp.baseline when it is enabled, and here (same rendered
    # values) only when it is not; the rest are this module's own. All at the baseline's
    # priority (900), which wins over nixpkgs' own "kernel.kptr_restrict" = mkDefault 1.
    boot.kernel.sysctl = lib.mapAttrs (_: lib.mkOverride baselineLib.priority) (
      (if config.msp.baseline.enable or false then { } else baselineLib.sysctlsOf rendered) // extraSysctls
    );
  };
}
