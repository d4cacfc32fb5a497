# Evaluates msp-flake's modules, both example hosts, the violating host, the compliant check
# host and every VM test's nodes with the REAL nixpkgs 26.05 declaration files wherever a
# copy is given (nixpkgsDir/<path in nixpkgs>), and the stand-in of nix/stubs.nix for the
# rest, with nixpkgs' real lib. Everything a build reads that our definitions meet is forced
# (nix/force-config.nix), so merge errors surface. Run by scripts/eval-real-nixpkgs; see
# docs/nixpkgs-eval.md for which files were real and what it found.
#
# Returns { real; stubbed; hosts.<name> = { evaluates; failed; }; regressions.<name> = bool; }
{
  lib,
  nixpkgsDir,
  modulesDir ? ../modules,
}:
let
  stubs = import ./stubs.nix { inherit lib; };
  forced = import ./force-config.nix { inherit lib; };
  view = import ./force-view.nix { inherit lib; };

  realFile = p: /. + "${nixpkgsDir}/${p}";
  hasReal = p: builtins.pathExists (realFile p);
  paths = lib.attrNames stubs.declarations;

  declarations =
    map (p: if hasReal p then realFile p else stubs.declarations.${p}) paths
    ++ lib.mapAttrsToList (_: m: m) (lib.filterAttrs (p: _: hasReal p) stubs.support);

  # Packages the VM test nodes name, as placeholders (nothing is built).
  pkgs = stubs.pkgs // {
    sshpass = stubs.pkgs.coreutils // { name = "sshpass"; };
    python3 = stubs.pkgs.coreutils // { name = "python3"; };
    openssl = stubs.pkgs.coreutils // { name = "openssl"; };
  };

  eval =
    modules:
    (lib.evalModules {
      modules = [
        { imports = declarations; }
        {
          _module.args = {
            inherit pkgs;
            inherit (stubs) utils;
          };
        }
      ]
      ++ modules;
    }).config;

  today = "2026-11-22";
  dated = {
    msp.baseline.evaluationDate = lib.mkDefault today;
  };
  host = modules: eval ([ modulesDir dated ] ++ modules);
  minimal = import ../checks/minimal-host.nix;
  violation = import ../checks/violating-host.nix;

  # The VM tests, called as `nix flake check` calls them, with runNixOSTest returning its
  # argument: their `nodes` are evaluated as written.
  self.nixosModules = {
    default = modulesDir;
    agent = modulesDir + "/agent.nix";
    baseline = modulesDir + "/baseline.nix";
    luks-tang = modulesDir + "/luks-tang.nix";
    ssh-ca = modulesDir + "/ssh-ca.nix";
    auditd = modulesDir + "/auditd.nix";
    hardening = modulesDir + "/hardening.nix";
  };
  vmArgs = {
    inherit self lib;
    pkgs = pkgs // {
      testers.runNixOSTest = t: t;
    };
  };
  vmNodes =
    name: file:
    lib.mapAttrs' (n: node: lib.nameValuePair "vm-${name}.${n}" (eval [ node ])) (import file vmArgs).nodes;

  hosts =
    lib.mapAttrs (_: modules: host modules) (import ../hosts)
    // {
      check-compliant = host [ minimal ];
      check-violating = host [
        minimal
        violation.module
      ];
    }
    // vmNodes "ssh-ca" ../checks/vm/ssh-ca.nix
    // vmNodes "auditd" ../checks/vm/auditd.nix
    // vmNodes "agent" ../checks/vm/agent.nix;

  evaluates = cfg: (builtins.tryEval (forced cfg)).success;
  failedAssertions = cfg: map (a: a.message) (builtins.filter (a: !a.assertion) cfg.assertions);

  bare = modules: eval modules;
in
{
  real = builtins.filter hasReal paths;
  stubbed = builtins.filter (p: !hasReal p) paths;
  hostNames = lib.attrNames hosts;
  hosts = lib.mapAttrs (
    _: cfg:
    let
      ok = evaluates cfg;
    in
    {
      evaluates = ok;
      failed = if ok then failedAssertions cfg else null;
    }
  ) hosts;
  # One host, forced without tryEval: the script calls this to print a failing host's error.
  force = name: forced hosts.${name};
  # What the checks below look at, for the record (docs/nixpkgs-eval.md).
  views = lib.mapAttrs (_: cfg: if evaluates cfg then view cfg else null) hosts;
  # For inspection: a host's whole config (e.g. `(...).configs.clinic-001-srv-primary.boot.initrd.secrets`).
  configs = hosts;
  expectedViolation = violation.expectedMessage;
  # The two confirmed conflicts, re-introduced against the real declarations: must fail.
  regressions = {
    duplicate-sysctl-at-one-priority-fails = !evaluates (host [
      minimal
      { boot.kernel.sysctl."kernel.kptr_restrict" = lib.mkOverride 900 2; }
    ]);
    mkDefault-2-against-nixpkgs-kptr-default-fails = !evaluates (bare [
      { boot.kernel.sysctl."kernel.kptr_restrict" = lib.mkDefault 2; }
    ]);
    mkDefault-lock-against-auditd-default-fails = !evaluates (bare [
      {
        security.auditd.enable = true;
        security.audit.enable = lib.mkDefault "lock";
      }
    ]);
  };
}
