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

  declarations = map (p: if hasReal p then realFile p else stubs.declarations.${p}) paths;

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
    fleet = modulesDir + "/fleet.nix";
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
    // vmNodes "agent" ../checks/vm/agent.nix
    // vmNodes "fleet" ../checks/vm/fleet.nix;

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
  # Paths that two DIFFERENT systemd.tmpfiles.rules lines name, per host: systemd-tmpfiles
  # uses the first, logs "Duplicate line for path ..., ignoring." and drops the other
  # (systemd 252, tried here; identical lines are accepted silently, so they are allowed).
  tmpfilesConflicts = lib.mapAttrs (
    _: cfg:
    let
      words = l: builtins.filter (w: w != "") (lib.splitString " " l);
      lines = lib.unique (map (l: lib.concatStringsSep " " (words l)) cfg.systemd.tmpfiles.rules);
      byPath = lib.groupBy (l: builtins.elemAt (words l) 1) lines;
    in
    lib.attrNames (lib.filterAttrs (_: ls: builtins.length ls > 1) byPath)
  ) hosts;
  # One host, forced without tryEval: the script calls this to print a failing host's error.
  force = name: forced hosts.${name};
  # What the checks below look at, for the record (docs/nixpkgs-eval.md).
  views = lib.mapAttrs (_: cfg: if evaluates cfg then view cfg else null) hosts;
  # For inspection: a host's whole config (e.g. `(...).configs.clinic-001-srv-primary.boot.initrd.secrets`).
  configs = hosts;
  expectedViolation = violation.expectedMessage;
  # Assertions only the REAL files make, provoked on the compliant host: each must fire with
  # its message when that file is real (proof the real file, not its stand-in, was evaluated;
  # the script says SKIP for a file it has no copy of).
  realAssertions =
    lib.mapAttrs
      (
        _: t:
        let
          cfg = host ([ minimal ] ++ t.modules);
        in
        {
          inherit (t) file expect;
          real = hasReal t.file;
          fired = hasReal t.file && lib.any (m: lib.hasInfix t.expect m) (failedAssertions cfg);
        }
      )
      {
        users-groups-lock-out-check = {
          file = "nixos/modules/config/users-groups.nix";
          # The baseline's users.mutableUsers = false, without ssh-ca's allowNoPasswordLogin.
          modules = [ { users.allowNoPasswordLogin = lib.mkForce false; } ];
          expect = "Neither the root account nor any wheel user has a password or SSH authorized key";
        };
        users-groups-user-needs-group = {
          file = "nixos/modules/config/users-groups.nix";
          modules = [ { users.users.svc.isSystemUser = true; } ];
          expect = "users.users.svc.group is unset";
        };
        luksroot-no-open-commands-in-systemd-initrd = {
          file = "nixos/modules/system/boot/luksroot.nix";
          modules = [ { boot.initrd.luks.devices.cryptroot.preOpenCommands = "true"; } ];
          expect = "preOpenCommands and postOpenCommands is not supported by systemd stage 1";
        };
        clevis-device-must-be-luks = {
          file = "nixos/modules/system/boot/clevis.nix";
          modules = [ { boot.initrd.clevis.devices.other.secretFile = "/var/lib/msp/clevis/other.jwe"; } ];
          expect = "No filesystem or LUKS device with the name other";
        };
        restic-needs-password = {
          file = "nixos/modules/services/backup/restic.nix";
          modules = [ { services.restic.backups.nopass = { repository = "/var/lib/backup2"; paths = [ "/srv" ]; }; } ];
          expect = "services.restic.backups.nopass: passwordFile or environmentFile must be set";
        };
        firewall-filter-forward-needs-nftables = {
          file = "nixos/modules/services/networking/firewall.nix";
          modules = [ { networking.firewall.filterForward = true; } ];
          expect = "filterForward only works with the nftables based firewall";
        };
        sshd-no-x11-without-xauth = {
          file = "nixos/modules/services/networking/ssh/sshd.nix";
          modules = [ { services.openssh.settings.X11Forwarding = lib.mkForce true; } ];
          expect = "cannot enable X11 forwarding without setting xauth location";
        };
      };
  # services.msp-fleet against the real files given (firewall.nix for openFirewall): each true.
  fleetChecks =
    let
      fleet =
        extra:
        host [
          {
            services.msp-fleet = lib.mkMerge [
              {
                enable = true;
                settings.source.local = "/srv/mirror";
                inventory = "/etc/msp-fleet/inventory.json";
              }
              extra
            ];
          }
        ];
      open = fleet {
        settings.listen = "0.0.0.0:8443";
        tokensFile = "/etc/msp-fleet/tokens";
        openFirewall = true;
      };
    in
    {
      open-firewall-evaluates-without-failed-assertion = evaluates open && failedAssertions open == [ ];
      open-firewall-opens-the-listen-port = builtins.elem 8443 open.networking.firewall.allowedTCPPorts;
      closed-by-default = !(builtins.elem 8427 (fleet { }).networking.firewall.allowedTCPPorts);
      non-loopback-without-tokens-fails = lib.any (lib.hasInfix "is not a loopback address") (
        failedAssertions (fleet { settings.listen = "0.0.0.0:8443"; })
      );
    };
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
