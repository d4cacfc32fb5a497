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
  units = lib.mapAttrs (_: unit) cfg.systemd.services;
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
  luks = lib.mapAttrs (_: d: d.crypttabExtraOpts) cfg.boot.initrd.luks.devices;
  firewall = cfg.networking.firewall.allowedTCPPorts;
  preSwitch = cfg.system.preSwitchChecks or { };
  assertions = map (a: a.assertion) cfg.assertions;
  inherit (cfg) warnings;
} true
