# Test cases for the pure baseline logic (modules/lib/baseline.nix) and dates
# (modules/lib/date.nix). Evaluated in CI by scripts/check-nix with
#   nix-instantiate --eval --strict --json checks/lib/baseline-cases.nix
# and compared with checks/lib/baseline-cases.expected.json (each status, count and message
# reviewed by hand against the rules in modules/lib/baseline.nix).
let
  b = import ../../modules/lib/baseline.nix;
  inherit (b) date;

  # A small baseline in the rendered format (baseline/README.md, "baseline.nix"), covering
  # every kind of comparison, plus an enforced rule without an option and an agent rule.
  rule = section: name: attrs: {
    ${section}.${name} = {
      key = "${section}.${name}";
      path = [ section name ];
      citation = [ ];
      why = "Because.";
      enforced_by = "nixos";
      enforce = true;
      compare = "eq";
      nixos_option = null;
      nixos_option_path = null;
      state = null;
    } // attrs;
  };
  baseline = {
    format = 1;
    name = "test-baseline";
    version = "1.0.0";
    sha256 = "aaaa";
    rules = builtins.foldl' (a: b: a // { ${builtins.head (builtins.attrNames b)} = (a.${builtins.head (builtins.attrNames b)} or { }) // b.${builtins.head (builtins.attrNames b)}; }) { } [
      (rule "ssh" "password_authentication" {
        citation = [ "§164.312(d)" ];
        why = "No passwords.";
        nixos_option = "services.openssh.settings.PasswordAuthentication";
        nixos_option_path = [ "services" "openssh" "settings" "PasswordAuthentication" ];
        value = false;
      })
      (rule "ssh" "max_auth_tries" {
        compare = "at_most";
        nixos_option = "services.openssh.settings.MaxAuthTries";
        nixos_option_path = [ "services" "openssh" "settings" "MaxAuthTries" ];
        value = 3;
      })
      (rule "audit" "backlog_limit" {
        citation = [ "§164.312(b)" ];
        why = "Keep records.";
        compare = "at_least";
        nixos_option = "security.audit.backlogLimit";
        nixos_option_path = [ "security" "audit" "backlogLimit" ];
        value = 8192;
      })
      (rule "audit" "rules" {
        citation = [ "§164.312(b)" ];
        compare = "includes";
        nixos_option = "security.audit.rules";
        nixos_option_path = [ "security" "audit" "rules" ];
        value = [ "-w /etc/passwd -p wa -k identity" ];
      })
      (rule "firewall" "allowed_tcp_ports" {
        nixos_option = "networking.firewall.allowedTCPPorts";
        nixos_option_path = [ "networking" "firewall" "allowedTCPPorts" ];
        value = [ 22 443 ];
      })
      (rule "hardening" "sysctl_kptr_restrict" {
        nixos_option = "boot.kernel.sysctl.\"kernel.kptr_restrict\"";
        nixos_option_path = [ "boot" "kernel" "sysctl" "kernel.kptr_restrict" ];
        value = 2;
      })
      (rule "logging" "journald_max_retention" { value = "2year"; })
      (rule "backup" "max_age_hours" {
        enforced_by = "agent";
        enforce = false;
        compare = "at_most";
        value = 26;
      })
    ];
  };

  good = {
    networking.firewall.allowedTCPPorts = [ 443 22 22 ];
    boot.kernel.sysctl."kernel.kptr_restrict" = 2;
    services.openssh.settings = {
      PasswordAuthentication = false;
      MaxAuthTries = 3;
    };
    security.audit = {
      backlogLimit = 8192;
      rules = [
        "-a exit,always -F arch=b64 -S execve"
        "-w /etc/passwd -p wa -k identity"
      ];
    };
  };
  bad = {
    networking.firewall.allowedTCPPorts = [ 22 443 5432 ];
    boot.kernel.sysctl."kernel.kptr_restrict" = 1;
    services.openssh.settings = {
      PasswordAuthentication = true;
      MaxAuthTries = 6;
    };
    security.audit = {
      backlogLimit = 64;
      rules = [ ];
    };
  };

  exc = rule: expires: {
    id = "EXC-${rule}";
    inherit rule expires;
    justification = "vendor tool";
    approved_by = "security officer";
  };
  # The rendered form of one client's exceptions (baseline/rendered/exceptions-<client>.nix).
  renderedExceptions = expires: {
    format = 1;
    client = "clinic-test";
    baseline_sha256 = "aaaa";
    overrides."firewall.allowed_tcp_ports" = {
      id = "EXC-clinic-test-001";
      key = "firewall.allowed_tcp_ports";
      baseline_value = [ 22 443 ];
      value = [ 22 443 5432 ];
      justification = "reporting workstation";
      approved_by = "security officer";
      inherit expires;
    };
  };

  today = "2026-11-22";
  run = config: exceptions: runWith { } config exceptions;
  runWith =
    facts: config: exceptions:
    let
      r = b.evaluate { inherit baseline config exceptions today facts; };
    in
    {
      statuses = builtins.listToAttrs (map (x: {
        name = x.rule;
        value = x.status;
      }) r.results);
      failed = builtins.length (builtins.filter (a: !a.assertion) r.assertions);
      inherit (r) exceptionErrors;
      warnings = builtins.length r.warnings;
    };

  # Facts: conditions one option cannot express.
  retention = ok: {
    "logging.journald_max_retention" = {
      inherit ok;
      requirement = "journald MaxRetentionSec=2year";
      actual = if ok then "it is set" else "services.journald.extraConfig has no MaxRetentionSec=2year";
    };
  };
  messageOf =
    config: exceptions: rule:
    (builtins.head (
      builtins.filter (x: x.rule == rule) (b.evaluate { inherit baseline config exceptions today; }).results
    )).message;
in
{
  compliant = run good [ ];
  violating = run bad [ ];
  unset = run { } [ ];
  exceptionExpiresToday = run bad [ (exc "ssh.password_authentication" "2026-11-22") ];
  exceptionExpiredYesterday = run bad [ (exc "ssh.password_authentication" "2026-11-21") ];
  exceptionNextYear = run bad [ (exc "ssh.password_authentication" "2027-01-01") ];
  # Two records for one rule: a still-valid one wins over an expired one.
  exceptionValidAndExpired = run bad [
    (exc "ssh.password_authentication" "2026-01-01")
    (exc "ssh.password_authentication" "2026-12-01")
  ];
  exceptionNotNeeded = run good [ (exc "ssh.password_authentication" "2027-01-01") ];
  exceptionMalformed = run bad [
    (exc "ssh.password_authentication" "2026-02-30")
    (exc "ssh.no_such_rule" "2027-01-01")
    { id = "EXC-x"; rule = "audit.backlog_limit"; expires = "2027-01-01"; }
    ((exc "firewall.allowed_tcp_ports" "2027-01-01") // { baseline_value = [ 22 ]; value = [ 22 443 5432 ]; })
  ];
  # Rendered exceptions: the override value is what the host must have instead.
  renderedValid = run bad (renderedExceptions "2026-11-22");
  renderedExpired = run bad (renderedExceptions "2026-11-21");
  renderedOtherValue = run (bad // { networking.firewall.allowedTCPPorts = [ 22 443 8080 ]; }) (renderedExceptions "2027-01-01");
  renderedStale = run good ((renderedExceptions "2027-01-01") // { baseline_sha256 = "bbbb"; });
  # Exception for an enforced rule without a NixOS option: accepted (enforced elsewhere).
  exceptionUnasserted = run good [ (exc "logging.journald_max_retention" "2027-01-01") ];
  unasserted = (b.evaluate { inherit baseline today; config = good; }).unasserted;
  mismatchMessage = messageOf (bad // { networking.firewall.allowedTCPPorts = [ 22 443 8080 ]; }) (renderedExceptions "2027-01-01") "firewall.allowed_tcp_ports";

  factMet = runWith (retention true) good [ ];
  factFailed = runWith (retention false) good [ ];
  factFailedExcepted = runWith (retention false) good [ (exc "logging.journald_max_retention" "2026-12-31") ];
  # A fact on a rule that also has an option is an extra condition.
  factOnOptionRule = runWith {
    "ssh.password_authentication" = {
      ok = false;
      requirement = "no account with a password usable over SSH";
      actual = "user bob has one";
    };
  } good [ ];
  factUnasserted = (b.evaluate { inherit baseline today; config = good; facts = retention true; }).unasserted;
  factMessage =
    (builtins.head (
      builtins.filter (x: x.rule == "logging.journald_max_retention")
        (b.evaluate { inherit baseline today; config = good; facts = retention false; }).results
    )).message;

  violationMessage = messageOf bad [ ] "ssh.password_authentication";
  expiredMessage = messageOf bad [ (exc "ssh.password_authentication" "2026-11-21") ] "ssh.password_authentication";
  unsetMessage = messageOf { } [ ] "audit.backlog_limit";

  definitions = b.definitions {
    inherit baseline;
    mkDefault = v: { _mkDefault = v; };
  };

  dates = {
    epoch0 = date.epochToDate 0;
    leapDay2000 = date.epochToDate 951782400;
    lastSecondOf2099 = date.epochToDate 4102444799;
    pinLastModified = date.epochToDate 1787101114;
    lastModifiedDate = date.lastModifiedToDate "20261122235959";
    valid = map date.isDate [ "2026-11-22" "2024-02-29" "2000-02-29" ];
    invalid = map date.isDate [ "2026-02-29" "1900-02-29" "2026-13-01" "2026-04-31" "2026-1-01" "26-11-22" "2026-11-22T00:00:00Z" "" ];
  };
}
