# A host setting that contradicts an enforced baseline rule, and what the build must say.
# Used by the flake's eval checks (real NixOS) and scripts/eval-modules (stand-in
# declarations), so both prove the same thing.
{
  rule = "ssh.password_authentication";
  module = {
    services.openssh.settings.PasswordAuthentication = true;
  };
  # Must appear in the failed assertion's message: the rule, its HIPAA controls, the option.
  expectedMessage = "rule ssh.password_authentication (HIPAA §164.312(d), §164.308(a)(5)(ii)(D)) requires services.openssh.settings.PasswordAuthentication = false, but this host has true.";
  # An exception for it (the checks add `expires`).
  exception = {
    id = "EXC-clinic-test-001";
    rule = "ssh.password_authentication";
    baseline_value = false;
    value = true;
    justification = "eval test";
    approved_by = "eval test";
  };
}
