# Test cases for the pure baseline logic (modules/lib/baseline.nix) and dates
# (modules/lib/date.nix). Evaluated in CI by scripts/check-nix with
#   nix-instantiate --eval --strict --json checks/lib/baseline-cases.nix
# and compared with checks/lib/baseline-cases.expected.json (written by hand, not generated).
let
  b = import ../../modules/lib/baseline.nix;
  inherit (b) date;

  # A small synthetic baseline covering every kind of check.
  baseline = {
    id = "test-v1";
    settings = {
      SSH-PASS = {
        title = "No SSH passwords";
        hipaa_controls = [ "§164.312(d)" ];
        option = [ "services" "openssh" "settings" "PasswordAuthentication" ];
        value = false;
      };
      AUDIT-BACKLOG = {
        title = "Audit backlog";
        hipaa_controls = [ "§164.312(b)" ];
        option = [ "security" "audit" "backlogLimit" ];
        check = "at_least";
        value = 8192;
      };
      LOGIN-TRIES = {
        option = [ "services" "openssh" "settings" "MaxAuthTries" ];
        check = "at_most";
        value = 3;
      };
      AUDIT-RULES = {
        title = "Identity audit rules";
        hipaa_controls = [ "§164.312(b)" ];
        option = [ "security" "audit" "rules" ];
        check = "contains_all";
        value = [ "-w /etc/passwd -p wa -k identity" ];
      };
    };
  };

  good = {
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
    inherit rule expires;
    reason = "vendor tool";
    approved_by = "security officer";
  };

  today = "2026-11-22";
  run =
    config: exceptions:
    let
      r = b.evaluate { inherit baseline config exceptions today; };
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
  exceptionExpiresToday = run bad [ (exc "SSH-PASS" "2026-11-22") ];
  exceptionExpiredYesterday = run bad [ (exc "SSH-PASS" "2026-11-21") ];
  exceptionNextYear = run bad [ (exc "SSH-PASS" "2027-01-01") ];
  # Two records for one rule: a still-valid one wins over an expired one.
  exceptionValidAndExpired = run bad [
    (exc "SSH-PASS" "2026-01-01")
    (exc "SSH-PASS" "2026-12-01")
  ];
  exceptionNotNeeded = run good [ (exc "SSH-PASS" "2027-01-01") ];
  exceptionMalformed = run bad [
    (exc "SSH-PASS" "2026-02-30")
    (exc "NO-SUCH-RULE" "2027-01-01")
    { rule = "AUDIT-BACKLOG"; expires = "2027-01-01"; }
  ];

  violationMessage = messageOf bad [ ] "SSH-PASS";
  expiredMessage = messageOf bad [ (exc "SSH-PASS" "2026-11-21") ] "SSH-PASS";
  unsetMessage = messageOf { } [ ] "AUDIT-BACKLOG";

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
