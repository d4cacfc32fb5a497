# A small JSON-able summary of a host's evaluated values msp-flake cares about (for the
# record of scripts/eval-real-nixpkgs): the sysctls, audit settings, sshd settings we set,
# and the ordering of the audit rule loader.
{ lib }:
cfg: {
  sysctl = lib.filterAttrs (_: v: v != null) cfg.boot.kernel.sysctl;
  audit = {
    inherit (cfg.security.audit) enable backlogLimit failureMode;
    rules = builtins.length cfg.security.audit.rules;
  };
  auditd = cfg.security.auditd.enable;
  ssh = lib.filterAttrs (n: _: builtins.elem n [ "PasswordAuthentication" "KbdInteractiveAuthentication" "PermitRootLogin" "AuthorizedPrincipalsFile" "TrustedUserCAKeys" "LogLevel" "KexAlgorithms" ]) cfg.services.openssh.settings;
  audit-rules-nixos =
    if cfg.systemd.services ? audit-rules-nixos then
      {
        inherit (cfg.systemd.services.audit-rules-nixos) after restartIfChanged;
        ExecStart = cfg.systemd.services.audit-rules-nixos.serviceConfig.ExecStart or null;
      }
    else
      null;
}
