# checks.<system>.*: what `nix flake check` runs (README.md, "What each check does").
# Evaluation checks compute their verdict while evaluating and produce a tiny derivation that
# either records the evidence or fails with it; VM tests boot real NixOS machines.
{
  self,
  pkgs,
  lib,
  system,
  mkHost,
}:
let
  violation = import ./violating-host.nix;
  minimal = import ./minimal-host.nix;
  today = "2026-11-22";

  failedAssertions = nixos: map (a: a.message) (builtins.filter (a: !a.assertion) nixos.config.assertions);

  # A derivation that succeeds when `ok`, and otherwise fails printing `report`.
  verdict =
    name: ok: what: report:
    pkgs.runCommand name
      {
        report = builtins.toJSON report;
        passAsFile = [ "report" ];
      }
      (
        if ok then
          ''
            echo ${lib.escapeShellArg "ok: ${what}"}
            cp "$reportPath" "$out"
          ''
        else
          ''
            echo ${lib.escapeShellArg "FAILED: ${what}"} >&2
            cat "$reportPath" >&2
            exit 1
          ''
      );

  host =
    modules:
    mkHost "check" (
      [
        minimal
        { msp.baseline.evaluationDate = today; }
      ]
      ++ modules
    );

  violating = host [ violation.module ];
  exceptedToday = host [
    violation.module
    { msp.baseline.exceptions = [ (violation.exception // { expires = today; }) ]; }
  ];
  expiredYesterday = host [
    violation.module
    { msp.baseline.exceptions = [ (violation.exception // { expires = "2026-11-21"; }) ]; }
  ];

  hasMessage = needle: nixos: builtins.any (lib.hasInfix needle) (failedAssertions nixos);

  checkDate =
    if builtins ? currentTime then
      self.lib.date.epochToDate builtins.currentTime
    else
      (
        if self.lib.dateOf self != null then
          self.lib.dateOf self
        else
          throw "checks.baseline-check: this flake has no commit date; evaluate with --impure"
      );

  vmArgs = {
    inherit self pkgs lib;
  };
in
{
  # The agent, built and with its test suite run in the sandbox (nix/package.nix).
  msp-agent = self.packages.${system}.msp-agent;

  # The pure baseline logic against the hand-written expected output (same as CI).
  baseline-lib =
    pkgs.runCommand "baseline-lib"
      {
        nativeBuildInputs = [ pkgs.jq ];
        got = builtins.toJSON (import ./lib/baseline-cases.nix);
        passAsFile = [ "got" ];
      }
      ''
        diff -u <(jq -S . ${./lib/baseline-cases.expected.json}) <(jq -S . "$gotPath")
        touch $out
      '';

  # The fleet inventory function (lib.mspFleetInventory) against the hand-checked output (same
  # as CI), and this flake's own hosts through it (every evaluated host has a client and id).
  fleet-inventory-lib =
    let
      own = self.lib.mspFleetInventory {
        inherit (self) nixosConfigurations;
        hostsDir = ../hosts;
      };
    in
    pkgs.runCommand "fleet-inventory-lib"
      {
        nativeBuildInputs = [ pkgs.jq ];
        got = builtins.toJSON (import ./lib/fleet-inventory-cases.nix);
        own = builtins.toJSON own;
        passAsFile = [
          "got"
          "own"
        ];
      }
      ''
        diff -u <(jq -S . ${./lib/fleet-inventory-cases.expected.json}) <(jq -S . "$gotPath")
        # Every example host runs the agent, so every one is in the inventory, once.
        jq -e '.version == 1 and ([.clients[].hosts[].id] | length) == ${toString (builtins.length (builtins.attrNames (import ../hosts)))}' "$ownPath"
        touch $out
      '';

  # A host contradicting an enforced rule does not build, and says why.
  baseline-violation-fails = verdict "baseline-violation-fails" (
    hasMessage violation.expectedMessage violating && hasMessage "baseline/README.md" violating
  ) "a host violating ${violation.rule} fails with the rule, HIPAA control and exception process" (failedAssertions violating);

  # Boundary of exception expiry, in UTC: valid through its `expires` day, not a day longer.
  baseline-exception-expiring-today-passes = verdict "baseline-exception-expiring-today-passes" (
    !(hasMessage violation.rule exceptedToday)
  ) "an exception expiring today (${today}) is still valid" (failedAssertions exceptedToday);
  baseline-exception-expired-fails = verdict "baseline-exception-expired-fails" (
    hasMessage "expired on 2026-11-21" expiredYesterday
  ) "an exception that expired yesterday fails the build" (failedAssertions expiredYesterday);

  # Issue #12: no unique-merge option defined twice at one priority (the pure check CI runs),
  # and, against this real nixpkgs, a host evaluates fully (nix/force-config.nix forces what a
  # build reads) while a sysctl defined a second time at the baseline's priority does not.
  unique-definitions =
    let
      r = import ./lib/unique-defs.nix;
      forced = cfg: (builtins.tryEval (import ../nix/force-config.nix { inherit lib; } cfg)).success;
      duplicate = host [ { boot.kernel.sysctl."kernel.kptr_restrict" = lib.mkOverride 900 2; } ];
    in
    verdict "unique-definitions" (
      r.conflicts == [ ]
      && r.hardeningOverlap == [ ]
      && r.selfTest.auditPreFix
      && forced (host [ ]).config
      && !(forced duplicate.config)
    ) "no sysctl key or audit.enable defined twice at one priority; a re-introduced duplicate fails evaluation" r;

  # `msp-agent baseline check`: baseline, controls map, exceptions (expiry, review dates) and
  # runbooks are consistent, at this flake's evaluation date. The date is an input of the
  # derivation, so a new date re-runs the check instead of reusing a cached success.
  baseline-check =
    pkgs.runCommand "msp-agent-baseline-check"
      {
        nativeBuildInputs = [ self.packages.${system}.msp-agent ];
        src = lib.fileset.toSource {
          root = ../.;
          fileset = lib.fileset.unions [
            (lib.fileset.maybeMissing ../baseline)
            (lib.fileset.maybeMissing ../runbooks)
          ];
        };
      }
      ''
        cd "$src"
        msp-agent baseline check --at ${checkDate}
        touch $out
      '';

  # NixOS VM tests (need KVM; they run wherever `nix flake check` has it).
  vm-ssh-ca = import ./vm/ssh-ca.nix vmArgs;
  vm-auditd = import ./vm/auditd.nix vmArgs;
  vm-agent = import ./vm/agent.nix vmArgs;
  vm-fleet = import ./vm/fleet.nix vmArgs;
}
// lib.optionalAttrs (system == "x86_64-linux") (
  # Every example host builds completely (hosts are x86_64-linux).
  lib.mapAttrs' (
    name: nixos: lib.nameValuePair "host-${name}" nixos.config.system.build.toplevel
  ) self.nixosConfigurations
)
