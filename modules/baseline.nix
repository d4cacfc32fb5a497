# msp.baseline: applies the rendered HIPAA baseline to the host and fails the build, with the
# rule, its HIPAA control and the exception process, when the host's final configuration
# contradicts an enforced setting and no valid (unexpired) exception covers it.
#
# The logic is the pure function in ./lib/baseline.nix (tested in CI with the real evaluator);
# this module only feeds it the NixOS config and the date.
{
  config,
  lib,
  ...
}:
let
  cfg = config.msp.baseline;
  baselineLib = import ./lib/baseline.nix;
  inherit (baselineLib) date;

  # The rendered baseline is imported here, not read from an option: the set of options it
  # sets must be known before `config` is, or the module system recurses forever.
  rendered = import ./lib/rendered-baseline.nix;

  result = baselineLib.evaluate {
    baseline = rendered;
    exceptions = cfg.exceptions;
    inherit config;
    today = cfg.evaluationDate;
  };

  exceptionType = lib.types.submodule {
    freeformType = lib.types.attrsOf lib.types.anything;
    options = {
      rule = lib.mkOption {
        type = lib.types.str;
        description = "Id of the baseline rule this exception waives.";
      };
      reason = lib.mkOption {
        type = lib.types.str;
        description = "Why the host cannot comply, and the compensating control.";
      };
      approved_by = lib.mkOption {
        type = lib.types.str;
        description = "Who approved the exception (the clinic's security officer).";
      };
      expires = lib.mkOption {
        type = lib.types.str;
        example = "2026-12-31";
        description = "Last day (UTC, YYYY-MM-DD, inclusive) the exception is valid.";
      };
    };
  };
in
{
  options.msp.baseline = {
    enable = lib.mkEnableOption "the msp-flake HIPAA baseline (settings and build-time assertions)";

    exceptions = lib.mkOption {
      type = lib.types.listOf exceptionType;
      default = [ ];
      example = lib.literalExpression ''
        [ {
          rule = "SSH-002";
          reason = "Imaging vendor's support tool logs in with a password until 2026-Q4; VPN-only.";
          approved_by = "Dr. A. Example, security officer";
          expires = "2026-12-31";
        } ]
      '';
      description = ''
        Approved exceptions to enforced baseline settings. An exception is valid through its
        `expires` day (UTC); after that the build fails again with the rule's message.
        Malformed exceptions, or ones naming an unknown rule, fail the build.
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
      description = "Per-rule outcome (compliant, excepted, exception-expired, violation), for reports and tests.";
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
          ]
          ++ lib.optionals (cfg.evaluationDate != null) result.assertions;
          warnings = lib.optionals (cfg.evaluationDate != null) result.warnings;
        }
      ]
      ++ baselineLib.definitions {
        baseline = rendered;
        inherit (lib) mkDefault;
      }
    )
  );
}
