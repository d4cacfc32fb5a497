# A host setting that contradicts an enforced baseline rule, and what the build must say.
# Used by the flake check `baseline-violation-fails` (real NixOS) and scripts/eval-modules
# (stand-in declarations), so both prove the same thing.
{
  rule = "SSH-001";
  module = {
    services.openssh.settings.PasswordAuthentication = true;
  };
  # Must appear in the failed assertion's message: the rule, the option and the HIPAA control.
  expectedMessage = "rule SSH-001 (SSH password authentication disabled; HIPAA §164.312(d)) requires services.openssh.settings.PasswordAuthentication = false, but this host has true.";
  exception = {
    rule = "SSH-001";
    reason = "eval test";
    approved_by = "eval test";
  };
}
