# `msp-flake.lib`: pure helpers for users' flakes (builtins only).
let
  date = import ../modules/lib/date.nix;
in
{
  inherit date;

  # The baseline-to-assertions logic (modules/lib/baseline.nix), for users' own checks.
  baseline = import ../modules/lib/baseline.nix;

  # The fleet inventory (msp-fleet's inventory JSON, as a Nix value) from a flake's
  # nixosConfigurations: every host with services.msp-agent enabled, its client, host id,
  # heartbeat interval and the keys in hostsDir/<name>/fleet-keys.json
  # (modules/lib/fleet-inventory.nix). For services.msp-fleet.inventory.
  mspFleetInventory = import ../modules/lib/fleet-inventory.nix;

  # "YYYY-MM-DD" (UTC) of a flake's last commit: the evaluation date for exception expiry in
  # pure evaluation. Use in a host flake as
  #   msp.baseline.evaluationDate = msp-flake.lib.dateOf self;
  # A flake without a commit date (a `path:` flake) gives null, which fails the build with a
  # message asking for a date, rather than silently skipping the expiry check.
  dateOf =
    flake:
    if flake ? lastModifiedDate then
      date.lastModifiedToDate flake.lastModifiedDate
    else if flake ? lastModified then
      date.epochToDate flake.lastModified
    else
      null;
}
