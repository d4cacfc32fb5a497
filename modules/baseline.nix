# msp.baseline: applies the rendered HIPAA baseline (baseline/rendered/, made by
# `msp-agent baseline render`) to the host, and fails the build, with the rule, its HIPAA
# controls and the exception process, when the host's final configuration contradicts an
# enforced setting and no valid (unexpired, matching) exception covers it. It also installs the
# drift manifest the agent checks (/etc/msp/expected-state.json, file hashes filled at build).
#
# The logic is the pure function in ./lib/baseline.nix (tested in CI with the real evaluator);
# this module only feeds it the NixOS config, the client's exceptions and the date.
{
  config,
  options,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.msp.baseline;
  baselineLib = import ./lib/baseline.nix;
  inherit (baselineLib) date;

  renderedDir = ../baseline/rendered;
  # Imported here, not read from an option: the set of options the baseline sets must be known
  # before `config` is, or the module system would recurse forever.
  rendered = import (renderedDir + "/baseline.nix");

  clientFile = name: if cfg.clientId == null then null else renderedDir + "/${name}-${cfg.clientId}";
  existing = p: p != null && builtins.pathExists p;

  result = baselineLib.evaluate {
    baseline = rendered;
    inherit (cfg) exceptions;
    inherit config facts;
    today = cfg.evaluationDate;
  };

  # What one NixOS option cannot express, for the enforced rules without one (and as an extra
  # condition on network_bound_unlock, whose option alone this module itself sets). LUKS
  # cipher and key size are fixed when the disk is formatted and are not visible to Nix.
  value = key: lib.attrByPath (lib.splitString "." key ++ [ "value" ]) null rendered.rules;
  luks = lib.attrNames config.boot.initrd.luks.devices;
  clevis = config.boot.initrd.clevis.devices;
  tangCount = if config.msp.luksTang.enable then lib.length config.msp.luksTang.tangServers else 0;
  # journald.conf lines from extraConfig (26.05) or settings.Journal (its replacement).
  journaldLines = (import ./lib/journald.nix).lines { inherit options config; };
  backups = config.services.restic.backups;
  onCalendar = b: (if b.timerConfig or null == null then { } else b.timerConfig).OnCalendar or null;
  facts = {
    "encryption.data_volumes_luks" = {
      ok = luks != [ ];
      requirement = "the data volumes on LUKS (boot.initrd.luks.devices; the ${value "encryption.data_volumes_luks"} header format is checked when the disk is formatted)";
      actual = "this host declares no LUKS device";
    };
    "encryption.network_bound_unlock" = {
      ok = luks != [ ] && lib.all (d: clevis ? ${d}) luks;
      requirement = "every LUKS device unlocked by Clevis (boot.initrd.clevis.devices, see msp.luksTang)";
      actual = "LUKS devices [${toString luks}] have Clevis secrets for [${toString (lib.attrNames clevis)}]";
    };
    "encryption.tang_min_servers" = {
      ok = tangCount >= value "encryption.tang_min_servers";
      requirement = "at least ${toString (value "encryption.tang_min_servers")} Tang servers (msp.luksTang.tangServers)";
      actual = "this host lists ${toString tangCount}";
    };
    "logging.journald_max_retention" = {
      ok = lib.elem "MaxRetentionSec=${value "logging.journald_max_retention"}" journaldLines;
      requirement = "MaxRetentionSec=${value "logging.journald_max_retention"} in the journald configuration (services.journald.extraConfig, or settings.Journal where nixpkgs has it; msp.hardening sets it)";
      actual = "the journald configuration does not have it";
    };
    "logging.journald_system_max_use" = {
      ok = lib.elem "SystemMaxUse=${value "logging.journald_system_max_use"}" journaldLines;
      requirement = "SystemMaxUse=${value "logging.journald_system_max_use"} in the journald configuration (services.journald.extraConfig, or settings.Journal where nixpkgs has it; msp.hardening sets it)";
      actual = "the journald configuration does not have it";
    };
    "backup.schedule" = {
      ok = backups != { } && lib.all (b: onCalendar b == value "backup.schedule") (lib.attrValues backups);
      requirement = "restic backups (services.restic.backups) with timerConfig.OnCalendar = \"${value "backup.schedule"}\"";
      actual =
        if backups == { } then
          "this host has no services.restic.backups"
        else
          "their schedules are ${builtins.toJSON (lib.mapAttrs (_: onCalendar) backups)}";
    };
    "backup.encrypted" = {
      ok = backups != { };
      requirement = "backups made with restic (services.restic.backups), which encrypts every repository client-side";
      actual = "this host has no services.restic.backups";
    };
  };

  # The drift manifest with the sha256 of every /etc file it names, taken from this very
  # system's environment.etc (baseline/README.md, "Expected-state manifest").
  manifestSource =
    let
      f = clientFile "expected-state";
    in
    if existing (if f == null then null else f + ".json") then f + ".json" else renderedDir + "/expected-state.json";
  manifest = builtins.fromJSON (builtins.readFile manifestSource);
  toHash = lib.filter (x: x != null) (
    lib.imap0 (
      i: f:
      let
        etc = config.environment.etc.${f.etc_name} or null;
      in
      if f.hash_at_build && f.etc_name != null && etc != null && etc.source != null then
        {
          index = i;
          inherit (etc) source;
        }
      else
        null
    ) manifest.files
  );
  manifestFile =
    pkgs.runCommand "msp-expected-state.json"
      {
        nativeBuildInputs = [ pkgs.jq ];
      }
      (
        ''
          cp ${manifestSource} m.json
        ''
        + lib.concatMapStrings (x: ''
          h=$(sha256sum < ${x.source} | cut -d' ' -f1)
          jq --argjson i ${toString x.index} --arg h "$h" '.files[$i].sha256 = $h' m.json > m.tmp && mv m.tmp m.json
        '') toHash
        + ''
          jq '.hashes_filled = true' m.json > $out
        ''
      );
in
{
  # Options this module reads; importing the same files again (nixosModules.default) is a
  # no-op, and each does nothing until enabled.
  imports = [
    ./agent.nix
    ./auditd.nix
    ./luks-tang.nix
  ];

  options.msp.baseline = {
    enable = lib.mkEnableOption "the msp-flake HIPAA baseline (settings, build-time assertions, drift manifest)";

    clientId = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = if config.services.msp-agent.enable then config.services.msp-agent.clientId else null;
      defaultText = lib.literalExpression "config.services.msp-agent.clientId when the agent is enabled, else null";
      description = "The client whose exceptions (baseline/rendered/exceptions-<client>.nix) apply to this host.";
    };

    exceptions = lib.mkOption {
      type = lib.types.nullOr (
        lib.types.either (lib.types.attrsOf lib.types.anything) (lib.types.listOf (lib.types.attrsOf lib.types.anything))
      );
      default =
        let
          f = clientFile "exceptions";
        in
        if existing (if f == null then null else f + ".nix") then import (f + ".nix") else null;
      defaultText = lib.literalExpression "import baseline/rendered/exceptions-<clientId>.nix, when that file exists";
      example = lib.literalExpression ''
        [ {
          id = "EXC-clinic-009-001";
          rule = "ssh.client_alive_interval_seconds";
          baseline_value = 300;
          value = 600;
          justification = "Vendor support tool drops sessions probed every 5 minutes.";
          approved_by = "Clinic-009 Security Official";
          expires = "2027-03-31";
        } ]
      '';
      description = ''
        Approved exceptions to enforced baseline rules: the client's rendered exceptions file
        (the default; the approval process is in baseline/README.md, section 3), or a list of
        records. An exception is valid through its `expires` day (UTC) and covers the rule only
        when the host has the exception's override `value`; an expired, stale or malformed
        exception fails the build.
      '';
    };

    evaluationDate = lib.mkOption {
      type = lib.types.nullOr (lib.types.strMatching "[0-9]{4}-[0-9]{2}-[0-9]{2}");
      default = if builtins ? currentTime then date.epochToDate builtins.currentTime else null;
      defaultText = lib.literalExpression "today (UTC) when evaluation is impure, otherwise null";
      example = lib.literalExpression "msp-flake.lib.dateOf self";
      description = ''
        "Today" (UTC) for exception expiry. Flake evaluation is pure and has no clock, so set
        this to the date of your flake's last commit (`msp-flake.lib.dateOf self`), or
        evaluate with `--impure` to use the real clock. When it is null the build fails:
        an expiry check without a date would let expired exceptions pass.
        A commit date only moves when you commit, so also run `nix flake check --impure`
        on a schedule (README, "Exceptions and dates").
      '';
    };

    results = lib.mkOption {
      type = lib.types.listOf (lib.types.attrsOf lib.types.anything);
      readOnly = true;
      default = result.results;
      defaultText = lib.literalExpression "the per-rule results of the baseline evaluation";
      description = "Per-rule outcome (compliant, excepted, exception-mismatch, exception-expired, violation), for reports and tests.";
    };
  };

  config = lib.mkIf cfg.enable (
    lib.mkMerge (
      [
        {
          assertions = [
            {
              assertion = cfg.evaluationDate != null;
              message = "msp.baseline.evaluationDate is not set and evaluation is pure (no clock), so exception expiry cannot be checked. Set msp.baseline.evaluationDate = msp-flake.lib.dateOf self; (your flake's last commit date) or build with --impure.";
            }
            {
              assertion = !(lib.isAttrs cfg.exceptions && cfg.exceptions ? client) || cfg.exceptions.client == cfg.clientId;
              message = "msp.baseline.exceptions are client ${cfg.exceptions.client or "?"}'s, but this host's client is ${toString cfg.clientId}.";
            }
          ]
          ++ lib.optionals (cfg.evaluationDate != null) result.assertions;
          warnings = lib.optionals (cfg.evaluationDate != null) result.warnings;

          # The loaded audit rules as a file, for the drift check and for auditors.
          environment.etc."audit/audit.rules".text = lib.mkDefault (lib.concatLines config.security.audit.rules);
          environment.etc."msp/expected-state.json".source = manifestFile;
          services.msp-agent.settings.baseline.manifest = lib.mkDefault "/etc/msp/expected-state.json";
          # The agent enforces its rules' values from the very file this host was built with.
          services.msp-agent.settings.baseline.file = lib.mkDefault "${../baseline/hipaa-v1.yaml}";
          services.msp-agent.settings.baseline.sha256 = lib.mkDefault (builtins.hashFile "sha256" ../baseline/hipaa-v1.yaml);
        }
      ]
      ++ baselineLib.definitions {
        baseline = rendered;
        # One priority for every baseline setting (baselineLib.priority, 900): it wins over
        # nixpkgs' own mkDefault definitions of the same options and loses to a host's value.
        mkDefault = lib.mkOverride baselineLib.priority;
        # A rule another msp module owns when enabled is defined there only (one owner).
        wrap =
          key: value:
          if baselineLib.ownedElsewhere ? ${key} then
            lib.mkIf (!(lib.attrByPath baselineLib.ownedElsewhere.${key} false config)) value
          else
            value;
      }
    )
  );
}
