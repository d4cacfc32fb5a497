# What a NixOS build of a host evaluates that msp-flake's definitions meet, as one value to
# force (deepSeq): the sysctl set, audit and auditd, sshd settings, our systemd units, /etc
# entries, journald, the firewall, pre-switch checks, assertions and warnings. Forcing it
# makes a merge error (two definitions of a unique option at one priority) surface; lazily
# unread values would hide it. Used by nix/eval-modules.nix and scripts/eval-real-nixpkgs.
{ lib }:
cfg:
let
  unit = u: {
    inherit (u) wantedBy after restartIfChanged;
    serviceConfig = lib.mapAttrs (_: v: if lib.isAttrs v && v ? outPath then v.outPath else v) u.serviceConfig;
  };
in
builtins.deepSeq {
  sysctl = cfg.boot.kernel.sysctl;
  audit = {
    inherit (cfg.security.audit) enable rules backlogLimit failureMode;
  };
  auditd = cfg.security.auditd.settings;
  ssh = cfg.services.openssh.settings;
  units = lib.mapAttrs (_: u: unit u // { environment = u.environment or { }; }) cfg.systemd.services;
  timers = lib.mapAttrs (_: t: t.timerConfig) cfg.systemd.timers;
  etc = lib.mapAttrs (_: e: e.mode) cfg.environment.etc;
  # Rendered files whose text comes from options we set (nixpkgs' own renderers, when real).
  etcText = lib.mapAttrs (_: e: e.text) (
    lib.filterAttrs (
      n: _:
      builtins.elem n [
        "sysctl.d/60-nixos.conf"
        "systemd/journald.conf"
        "audit/auditd.conf"
        "audit/audit.rules"
        "ssh/msp_user_ca.pub"
      ]
    ) cfg.environment.etc
  );
  journald = cfg.services.journald.storage;
  chrony = cfg.services.chrony.servers;
  initrdSecrets = cfg.boot.initrd.secrets or { };
  luks = lib.mapAttrs (_: d: {
    inherit (d) device crypttabExtraOpts;
    keyFile = d.keyFile or null;
  }) cfg.boot.initrd.luks.devices;
  # The systemd initrd: units (luksroot.nix's clevis unlock) and files (its crypttab).
  initrdUnits = lib.mapAttrs (_: unit) cfg.boot.initrd.systemd.services;
  initrdContents = lib.mapAttrs (_: c: if c.source == null then c.text else c.source.text or c.source.outPath) cfg.boot.initrd.systemd.contents;
  # Package names and wrapper scripts (restic.nix's restic-<name> reads the unit's environment).
  packages = map (p: { name = p.name or null; text = p.text or null; }) cfg.environment.systemPackages;
  sudo = {
    inherit (cfg.security.sudo) enable execWheelOnly;
    configFile = cfg.security.sudo.configFile or null;
  };
  wrappers = cfg.security.wrappers or { };
  tmpfiles = {
    inherit (cfg.systemd.tmpfiles) rules settings;
    # The rendered rule files, where tmpfiles.nix is real (its packages carry the text).
    files = map (p: p.text or null) (cfg.systemd.tmpfiles.packages or [ ]);
  };
  firewall = cfg.networking.firewall.allowedTCPPorts;
  preSwitch = cfg.system.preSwitchChecks or { };
  assertions = map (a: a.assertion) cfg.assertions;
  inherit (cfg) warnings;
} true
