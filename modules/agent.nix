# services.msp-agent: the compliance agent daemon, its configuration file, its approved
# runbooks (hashed at build time), its secrets (systemd credentials, never in the Nix store)
# and its scheduled jobs (weekly restore test, monthly compliance packet).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.msp-agent;
  yaml = pkgs.formats.yaml { };

  # Credential names inside $CREDENTIALS_DIRECTORY. Contract with the agent: when the config
  # leaves `signing_key_file` / `worm.credentials_file` unset, the agent reads these.
  signingCredential = "evidence-signing.key";
  wormCredential = "worm-credentials";

  runbookIds = builtins.attrNames cfg.runbooks;

  # The approved runbooks as one store path: exactly the files listed, under their ids.
  # The hashes below are of the same bytes, computed while evaluating, so what the guard
  # checks at run time is what the operator reviewed in this configuration.
  runbooksDir = pkgs.runCommand "msp-approved-runbooks" { } (
    ''
      mkdir -p $out
    ''
    + lib.concatMapStrings (id: ''
      cp ${cfg.runbooks.${id}} $out/${lib.escapeShellArg "${id}.yaml"}
    '') runbookIds
  );
  runbookHashes = lib.mapAttrs (_: file: builtins.hashFile "sha256" file) cfg.runbooks;

  # Runbooks shipped with msp-flake: every runbooks/*.yaml, keyed by file name without
  # ".yaml" (which is the runbook id, e.g. RB-DISK-001). Templates are not approved.
  shippedRunbooks =
    let
      dir = ../runbooks;
      entries = if builtins.pathExists dir then builtins.readDir dir else { };
      yamlFiles = lib.filterAttrs (n: t: t == "regular" && lib.hasSuffix ".yaml" n) entries;
    in
    lib.mapAttrs' (n: _: lib.nameValuePair (lib.removeSuffix ".yaml" n) (dir + "/${n}")) yamlFiles;

  # Remove nulls, and sections left empty by that, so unset optional keys are absent from the
  # YAML and the agent's own defaults apply (its parser is strict: unknown keys are errors,
  # absent keys take defaults).
  dropNulls =
    v:
    if builtins.isAttrs v then
      lib.filterAttrs (_: x: x != null && x != { }) (lib.mapAttrs (_: dropNulls) v)
    else if builtins.isList v then
      map dropNulls v
    else
      v;

  # The `worm` section only when uploads are configured (the agent's parser is strict, so a
  # half-filled section would be an error rather than "off").
  rendered = if cfg.settings.worm.endpoint == null then removeAttrs cfg.settings [ "worm" ] else cfg.settings;
  configFile = yaml.generate "msp-agent.yaml" (dropNulls rendered);

  agentExe = lib.getExe cfg.package;

  credentials =
    lib.optional (cfg.signingKeyFile != null) "${signingCredential}:${cfg.signingKeyFile}"
    ++ lib.optional (cfg.worm.credentialsFile != null) "${wormCredential}:${cfg.worm.credentialsFile}"
    # The planner advisor's API key: the agent reads $CREDENTIALS_DIRECTORY/advisor-api-key.
    ++ lib.optional (cfg.advisorApiKeyFile != null) "advisor-api-key:${cfg.advisorApiKeyFile}";

  # Sandboxing shared by the daemon and the scheduled jobs. The agent runs as root because
  # runbooks restart units, free disk space and run restic; so the file system stays
  # writable where remediation needs it and the rest is taken away.
  hardening = {
    LoadCredential = credentials;
    StateDirectory = [
      "msp"
      "msp/state"
      "msp/evidence"
    ];
    StateDirectoryMode = "0700";
    UMask = "0077";
    NoNewPrivileges = true;
    # No PrivateTmp: RB-DISK-001 frees space in the real /tmp.
    ProtectSystem = "full";
    ProtectHome = "read-only";
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectClock = true;
    ProtectHostname = true;
    RestrictRealtime = true;
    RestrictSUIDSGID = true;
    RestrictNamespaces = true;
    LockPersonality = true;
    MemoryDenyWriteExecute = true;
    SystemCallArchitectures = "native";
    SystemCallFilter = [ "@system-service" ];
    RestrictAddressFamilies = [
      "AF_UNIX"
      "AF_INET"
      "AF_INET6"
      "AF_NETLINK"
    ];
  };

  # RB-DRIFT-001 with `drift.reapply` runs the generation's switch-to-configuration, which
  # writes /etc and /boot, sets sysctls, loads modules and restarts units: the daemon's sandbox
  # must then not forbid those (the scheduled jobs keep the full sandbox).
  reapplySandbox = lib.optionalAttrs (cfg.settings.drift.reapply == true) {
    ProtectSystem = false;
    ProtectHome = false;
    ProtectKernelTunables = false;
    ProtectKernelModules = false;
    ProtectControlGroups = false;
    ProtectHostname = false;
    RestrictNamespaces = false;
    MemoryDenyWriteExecute = false;
    SystemCallFilter = [ ];
  };

  # The key reaches the jobs the same way as the daemon: as a credential, in a directory only
  # the unit can read.
  keyDirArg = if cfg.signingKeyFile != null then ''--key-dir "$CREDENTIALS_DIRECTORY"'' else "";
  # Public keys (key-info.json, archive/) for the packet's verification: the key file's directory.
  packetPublicKeys =
    if cfg.signingKeyFile != null then dirOf cfg.signingKeyFile else "/etc/msp/signing-keys";

  jobUnit = description: script: {
    inherit description;
    after = [ "network-online.target" ];
    wants = [ "network-online.target" ];
    restartIfChanged = false;
    serviceConfig = hardening // {
      Type = "oneshot";
      ExecStart = "${pkgs.writeShellScript "msp-agent-job" script}";
    };
  };
in
{
  options.services.msp-agent = {
    enable = lib.mkEnableOption "the msp-agent HIPAA compliance agent";

    package = lib.mkOption {
      type = lib.types.package;
      default = pkgs.callPackage ../nix/package.nix { };
      defaultText = lib.literalExpression "msp-flake's msp-agent package (nix/package.nix)";
      description = "The msp-agent package to run.";
    };

    clientId = lib.mkOption {
      type = lib.types.strMatching "[A-Za-z0-9][A-Za-z0-9._-]*";
      example = "clinic-001";
      description = "The clinic (client) this host belongs to; written into every evidence bundle.";
    };

    runbooks = lib.mkOption {
      type = lib.types.attrsOf lib.types.path;
      default = shippedRunbooks;
      defaultText = lib.literalExpression "every runbooks/*.yaml shipped with msp-flake, keyed by id";
      example = lib.literalExpression ''
        {
          RB-DISK-001 = "''${msp-flake}/runbooks/RB-DISK-001.yaml";
          RB-CLINIC-APP-001 = ./runbooks/RB-CLINIC-APP-001.yaml;
        }
      '';
      description = ''
        The approved runbooks: runbook id to YAML file. Only these are copied into the
        agent's runbook directory, and their SHA-256 hashes are computed at build time and
        written to `approved_runbooks` in the agent's configuration; the agent refuses a
        runbook that is not listed or whose bytes do not match.
      '';
    };

    signingKeyFile = lib.mkOption {
      type = lib.types.nullOr (lib.types.strMatching "/.*");
      default = "/etc/msp/signing-keys/evidence-signing.key";
      description = ''
        Absolute path, on the host, of the evidence signing key (made by
        `msp-agent key generate`). It is a string, not a Nix path, so the key never enters
        the world-readable Nix store; systemd passes it to the agent as the credential
        `${signingCredential}` (`LoadCredential=`), readable by the service only.
        `null` leaves credentials alone (set `settings.signing_key_file` yourself).
      '';
    };

    worm = {
      endpoint = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        example = "https://s3.eu-central-1.amazonaws.com";
        description = "S3 endpoint for WORM (Object Lock) evidence storage; `null` disables uploads.";
      };
      bucket = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        description = "Bucket with Object Lock enabled (COMPLIANCE mode).";
      };
      region = lib.mkOption {
        type = lib.types.str;
        default = "us-east-1";
        description = "S3 region used for request signing.";
      };
      credentialsFile = lib.mkOption {
        type = lib.types.nullOr (lib.types.strMatching "/.*");
        default = null;
        example = "/etc/msp/worm-credentials";
        description = ''
          Absolute path, on the host, of the S3 credentials file. Never copied to the store;
          passed to the agent as the systemd credential `${wormCredential}`.
        '';
      };
    };

    advisorApiKeyFile = lib.mkOption {
      type = lib.types.nullOr (lib.types.strMatching "/.*");
      default = null;
      example = "/etc/msp/advisor-api-key";
      description = ''
        Absolute path, on the host, of the planner advisor's API key (for an endpoint that
        needs one). Never copied to the store; passed to the agent as the systemd credential
        `advisor-api-key`. The advisor itself is configured in
        {option}`services.msp-agent.settings` as `advisor.{policy,url,model,...}` (README,
        "The planner's advisor"); its policy defaults to `off`.
      '';
    };

    alertWebhookUrl = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      description = ''
        Webhook called when a remediation fails or an incident is suppressed. The URL ends up
        in the (world-readable) Nix store: use a URL whose secret is not in the URL itself.
      '';
    };

    watchdogSec = lib.mkOption {
      type = lib.types.ints.positive;
      default = 60;
      description = "systemd watchdog interval (seconds); the agent pings at half of it.";
    };

    restoreTest = {
      enable = lib.mkOption {
        type = lib.types.bool;
        default = true;
        description = "Run RB-RESTORE-001 (backup restore test) on a timer.";
      };
      onCalendar = lib.mkOption {
        type = lib.types.str;
        default = "Sun *-*-* 03:00:00";
        description = "When the restore test runs (systemd.time(7)); weekly by default.";
      };
    };

    evidenceVerify = {
      enable = lib.mkOption {
        type = lib.types.bool;
        default = true;
        description = ''
          Run `msp-agent evidence verify` over the evidence store on a timer; a failure raises
          an `evidence_verify_failed` alert (journal at crit, and the alert webhook) and leaves
          the unit failed.
        '';
      };
      onCalendar = lib.mkOption {
        type = lib.types.str;
        default = "*-*-* 05:00:00";
        description = "When the evidence store is verified (systemd.time(7)); daily by default.";
      };
    };

    evidencePrune = {
      enable = lib.mkOption {
        type = lib.types.bool;
        default = true;
        description = ''
          Run `msp-agent evidence prune` on a timer: local copies of bundles confirmed in the
          WORM bucket and older than `localRetentionDays` are removed (never the chain head,
          never anything unconfirmed; a signed prune record is kept), then the evidence file
          system's usage is checked against `diskAlertPercent`. Without WORM uploads nothing
          is ever confirmed, so nothing is pruned.
        '';
      };
      onCalendar = lib.mkOption {
        type = lib.types.str;
        default = "*-*-* 04:30:00";
        description = "When the pruner runs (systemd.time(7)); daily by default.";
      };
      localRetentionDays = lib.mkOption {
        type = lib.types.ints.positive;
        default = 90;
        description = "Days a confirmed bundle is kept locally before its local copy may be removed.";
      };
      diskAlertPercent = lib.mkOption {
        type = lib.types.ints.between 1 100;
        default = 80;
        description = "Usage of the evidence file system (percent) above which a signed record and an alert are raised.";
      };
    };

    wormRestoreTest = {
      enable = lib.mkOption {
        type = lib.types.bool;
        default = cfg.worm.endpoint != null;
        defaultText = lib.literalExpression "config.services.msp-agent.worm.endpoint != null";
        description = ''
          Run `msp-agent worm restore-test` on a timer: a random sample of bundles is
          downloaded from the WORM bucket, checked against the server's checksums and the
          upload receipts, verified, and the result recorded as a signed `worm_restore_test`
          record (evidence for §164.308(a)(7)).
        '';
      };
      onCalendar = lib.mkOption {
        type = lib.types.str;
        default = "*-*-02 04:00:00";
        description = "When the WORM restore test runs (systemd.time(7)); monthly by default.";
      };
      sample = lib.mkOption {
        type = lib.types.ints.positive;
        default = 20;
        description = "How many bundles each WORM restore test downloads and verifies.";
      };
    };

    packet = {
      enable = lib.mkOption {
        type = lib.types.bool;
        default = true;
        description = "Generate last month's compliance packet on a timer.";
      };
      onCalendar = lib.mkOption {
        type = lib.types.str;
        default = "*-*-01 06:00:00";
        description = "When the monthly packet for the previous month is generated (systemd.time(7)).";
      };
    };

    settings = lib.mkOption {
      description = ''
        The agent's configuration, written to `/etc/msp/agent.yaml`. Typed options below are
        the core keys; any other key is passed through unchanged (freeform), so a new agent
        setting needs no change to this module. Unset (`null`) keys are left out of the file.
      '';
      default = { };
      type = lib.types.submodule {
        freeformType = yaml.type;
        options = {
          client_id = lib.mkOption {
            type = lib.types.str;
            default = cfg.clientId;
            defaultText = lib.literalExpression "config.services.msp-agent.clientId";
            description = "Client id written into every evidence bundle.";
          };
          hostname = lib.mkOption {
            type = lib.types.nullOr lib.types.str;
            default = config.networking.hostName;
            defaultText = lib.literalExpression "config.networking.hostName";
            description = "Host name written into evidence; `null` uses the kernel host name.";
          };
          runbooks_dir = lib.mkOption {
            type = lib.types.str;
            default = "/etc/msp/runbooks";
            description = ''
              Directory the agent loads runbooks from. The module links it to a store path
              holding exactly the approved runbooks, so `msp-agent runbook run ID` (whose
              default is this directory) uses the same files by hand.
            '';
          };
          approved_runbooks = lib.mkOption {
            type = lib.types.attrsOf (lib.types.strMatching "[0-9a-f]{64}");
            default = runbookHashes;
            defaultText = lib.literalExpression "SHA-256 of each file in services.msp-agent.runbooks, computed at build time";
            description = "Runbook id to SHA-256 (hex) of the runbook file the agent may run.";
          };
          evidence_dir = lib.mkOption {
            type = lib.types.str;
            default = "/var/lib/msp/evidence";
            description = "Root of the evidence store (bundles under YYYY/MM/).";
          };
          state_dir = lib.mkOption {
            type = lib.types.str;
            default = "/var/lib/msp/state";
            description = "Journal cursor, outbox and guard state.";
          };
          signing_key_file = lib.mkOption {
            type = lib.types.nullOr lib.types.str;
            default = null;
            description = ''
              Signing key path for the agent. `null` (the default) means
              `$CREDENTIALS_DIRECTORY/${signingCredential}`, which this module provides
              from {option}`services.msp-agent.signingKeyFile`.
            '';
          };
          client_permissions = lib.mkOption {
            type = lib.types.attrsOf (lib.types.enum [ "auto" "manual" "deny" ]);
            default = lib.mapAttrs (_: _: "auto") cfg.runbooks;
            defaultText = lib.literalExpression "auto for every approved runbook";
            example = {
              RB-CPU-001 = "manual";
            };
            description = ''
              What this client allows per runbook: `auto` (the agent runs it when an incident
              calls for it), `manual` (only `msp-agent runbook run`), `deny`. A runbook missing
              here is not permitted.
            '';
          };
          # Tuning below defaults to null: the key is left out and the agent's own default
          # applies (one source of truth for defaults: the agent's config reference).
          guard.cooldown_seconds = lib.mkOption {
            type = lib.types.nullOr lib.types.ints.unsigned;
            default = null;
            description = "Minimum time between two runs of the same runbook on the same target (agent default 300).";
          };
          probes = {
            disk.threshold_percent = lib.mkOption {
              type = lib.types.nullOr (lib.types.ints.between 1 100);
              default = null;
              description = "Disk usage (percent) at which RB-DISK-001 is triggered (agent default 90).";
            };
            disk.mounts = lib.mkOption {
              type = lib.types.nullOr (lib.types.listOf lib.types.str);
              default = null;
              description = "Mount points the disk probe watches (agent default `/`).";
            };
            cpu.threshold_percent = lib.mkOption {
              type = lib.types.nullOr lib.types.ints.positive;
              default = null;
              description = "Percent of one core a single unit may use before it counts as high CPU.";
            };
            cpu.sustained_seconds = lib.mkOption {
              type = lib.types.nullOr lib.types.ints.positive;
              default = null;
              description = "How long CPU usage must stay high before RB-CPU-001 is triggered.";
            };
            certs.paths = lib.mkOption {
              type = lib.types.nullOr (lib.types.listOf lib.types.str);
              default = null;
              description = "Certificate files or directories (PEM) whose expiry the cert probe watches.";
            };
            certs.warn_days = lib.mkOption {
              type = lib.types.nullOr lib.types.ints.positive;
              default = null;
              description = "Days before expiry at which RB-CERT-001 is triggered.";
            };
            restore_test.enabled = lib.mkOption {
              type = lib.types.nullOr lib.types.bool;
              default = null;
              description = ''
                The daemon's own restore-test schedule (agent default true). Set to false by
                default when `services.msp-agent.restoreTest.enable` runs the test on a timer,
                so that one schedule, not two, runs RB-RESTORE-001.
              '';
            };
          };
          worm = {
            endpoint = lib.mkOption {
              type = lib.types.nullOr lib.types.str;
              default = cfg.worm.endpoint;
              defaultText = lib.literalExpression "config.services.msp-agent.worm.endpoint";
              description = "S3 endpoint URL.";
            };
            bucket = lib.mkOption {
              type = lib.types.nullOr lib.types.str;
              default = cfg.worm.bucket;
              defaultText = lib.literalExpression "config.services.msp-agent.worm.bucket";
              description = "Object Lock bucket.";
            };
            region = lib.mkOption {
              type = lib.types.str;
              default = cfg.worm.region;
              defaultText = lib.literalExpression "config.services.msp-agent.worm.region";
              description = "S3 region.";
            };
            path_style = lib.mkOption {
              type = lib.types.nullOr lib.types.bool;
              default = null;
              description = "Path-style bucket addressing (MinIO, moto); agent default false.";
            };
            prefix = lib.mkOption {
              type = lib.types.nullOr lib.types.str;
              default = null;
              description = "First component of every object key (PREFIX/CLIENT/HOST/YYYY/MM/FILE); agent default `msp-evidence`.";
            };
            retention_days = lib.mkOption {
              type = lib.types.nullOr lib.types.ints.positive;
              default = null;
              description = "Object Lock COMPLIANCE retention in days; agent default 2555 (the baseline requires at least 2190).";
            };
            credentials_file = lib.mkOption {
              type = lib.types.nullOr lib.types.str;
              default =
                if cfg.worm.credentialsFile != null then "/run/credentials/msp-agent.service/${wormCredential}" else null;
              defaultText = lib.literalExpression ''"/run/credentials/msp-agent.service/${wormCredential}" when worm.credentialsFile is set'';
              description = ''
                Where the agent reads the S3 credentials: the systemd credential made from
                {option}`services.msp-agent.worm.credentialsFile` (systemd's credentials
                directory of the unit). `null`: the `AWS_*` environment variables.
              '';
            };
          };
          alert.webhook_url = lib.mkOption {
            type = lib.types.nullOr lib.types.str;
            default = cfg.alertWebhookUrl;
            defaultText = lib.literalExpression "config.services.msp-agent.alertWebhookUrl";
            description = "Alert webhook URL.";
          };
          baseline.manifest = lib.mkOption {
            type = lib.types.nullOr lib.types.str;
            default = null;
            description = "Expected-state manifest the agent checks for drift (set by the baseline module).";
          };
          baseline.file = lib.mkOption {
            type = lib.types.nullOr lib.types.str;
            default = null;
            description = ''
              The baseline YAML this host was built with (set by the baseline module to its store
              path). The agent enforces the values of its `enforced_by: agent` rules from this
              file; `null`: the baseline embedded in the agent.
            '';
          };
          baseline.sha256 = lib.mkOption {
            type = lib.types.nullOr lib.types.str;
            default = null;
            description = "SHA-256 of the baseline file; the agent refuses to start when the file does not match (set by the baseline module).";
          };
          heartbeat.interval_seconds = lib.mkOption {
            type = lib.types.nullOr lib.types.ints.positive;
            default = null;
            description = ''
              Seconds between two signed heartbeat bundles (agent default 900; the first is
              written at start). `evidence verify` flags a gap longer than max(1 h, 2 × interval).
            '';
          };
          drift.enabled = lib.mkOption {
            type = lib.types.nullOr lib.types.bool;
            default = null;
            description = "Watch the governed files for drift (agent default true).";
          };
          drift.reapply = lib.mkOption {
            type = lib.types.nullOr lib.types.bool;
            default = null;
            description = ''
              Let RB-DRIFT-001 run the current generation's `switch-to-configuration switch`
              to put drifted files back (agent default false: drift is recorded and alerted only).
            '';
          };
        };
      };
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.signingKeyFile == null || !(lib.hasPrefix builtins.storeDir cfg.signingKeyFile);
        message = "services.msp-agent.signingKeyFile points into the Nix store (${cfg.signingKeyFile}), which is world-readable. Keep the key on the host, e.g. /etc/msp/signing-keys/evidence-signing.key (mode 0400).";
      }
      {
        assertion = cfg.worm.credentialsFile == null || !(lib.hasPrefix builtins.storeDir cfg.worm.credentialsFile);
        message = "services.msp-agent.worm.credentialsFile points into the world-readable Nix store; keep it on the host.";
      }
      {
        assertion = cfg.advisorApiKeyFile == null || !(lib.hasPrefix builtins.storeDir cfg.advisorApiKeyFile);
        message = "services.msp-agent.advisorApiKeyFile points into the world-readable Nix store; keep it on the host.";
      }
      {
        assertion = cfg.worm.endpoint == null || cfg.worm.bucket != null;
        message = "services.msp-agent.worm.endpoint is set but worm.bucket is not.";
      }
    ]
    ++ map (id: {
      assertion = builtins.match "[A-Za-z0-9][A-Za-z0-9._-]*" id != null;
      message = "services.msp-agent.runbooks: runbook id `${id}` must be letters, digits, '.', '_' or '-'.";
    }) runbookIds
    ++ lib.optional cfg.restoreTest.enable {
      assertion = cfg.runbooks ? "RB-RESTORE-001";
      message = "services.msp-agent.restoreTest is enabled but RB-RESTORE-001 is not among services.msp-agent.runbooks.";
    };

    # One restore-test schedule: the timer when it is enabled, else the daemon's probe.
    services.msp-agent.settings.probes.restore_test.enabled = lib.mkIf cfg.restoreTest.enable (
      lib.mkDefault false
    );

    # The backup-age check judges every restic backup this host defines, including one that
    # never ran (with no list, only units that have left a backup_completed record count).
    services.msp-agent.settings.probes.backup_age.units = lib.mkDefault (
      map (n: "restic-backups-${n}.service") (lib.attrNames config.services.restic.backups)
    );

    environment.etc."msp/agent.yaml".source = configFile;
    environment.etc."msp/runbooks".source = runbooksDir;
    environment.systemPackages = [ cfg.package ];
    # For operators' manual runs (`msp-agent runbook run ...` records the client id).
    environment.variables.MSP_CLIENT_ID = cfg.clientId;

    # The key directory exists with tight permissions even before the operator installs a key.
    systemd.tmpfiles.rules = [ "d /etc/msp/signing-keys 0700 root root -" ];

    systemd.services.msp-agent = {
      description = "msp-agent HIPAA compliance agent";
      documentation = [ "https://github.com/msp-flake/msp-flake" ];
      wantedBy = [ "multi-user.target" ];
      after = [
        "network-online.target"
        "systemd-journald.service"
      ];
      wants = [ "network-online.target" ];
      restartTriggers = [ configFile ];
      # The TLS probe hands the handshake to `openssl s_client` (rustls cannot offer the old
      # protocols it must see refused); the clock probe asks chronyc when chrony runs
      # (timedatectl, for timesyncd, is systemd's and on the default path).
      path = [ pkgs.openssl ] ++ lib.optional config.services.chrony.enable pkgs.chrony;
      serviceConfig = hardening // reapplySandbox // {
        Type = "notify";
        NotifyAccess = "main";
        ExecStart = "${agentExe} run --config /etc/msp/agent.yaml";
        WatchdogSec = cfg.watchdogSec;
        Restart = "always";
        RestartSec = 5;
        # On SIGTERM the running step finishes (steps are bounded by their own timeouts);
        # past this, systemd kills it and the run is redone from the start after the restart.
        TimeoutStopSec = 300;
        # SIGTERM to the agent only, so the running step can finish (the default would
        # signal the step's processes too and fail it); leftovers are killed after it exits.
        KillMode = "mixed";
      };
      # A crash loop ends in a failed unit the operator sees, not an endless silent restart.
      unitConfig = {
        StartLimitBurst = 5;
        StartLimitIntervalSec = 300;
      };
    };

    systemd.services.msp-agent-restore-test = lib.mkIf cfg.restoreTest.enable (
      jobUnit "msp-agent weekly restore test (RB-RESTORE-001)" ''
        exec ${agentExe} runbook run RB-RESTORE-001 \
          --runbooks ${lib.escapeShellArg cfg.settings.runbooks_dir} \
          --evidence-dir ${lib.escapeShellArg cfg.settings.evidence_dir} \
          ${keyDirArg} --client-id ${lib.escapeShellArg cfg.clientId} \
          --alert-config /etc/msp/agent.yaml
      ''
    );
    systemd.timers.msp-agent-restore-test = lib.mkIf cfg.restoreTest.enable {
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnCalendar = cfg.restoreTest.onCalendar;
        Persistent = true;
        RandomizedDelaySec = "30m";
      };
    };

    systemd.services.msp-agent-packet = lib.mkIf cfg.packet.enable (
      jobUnit "msp-agent monthly compliance packet" ''
        # The packet covers the previous calendar month, in UTC.
        month=$(${pkgs.coreutils}/bin/date -u -d "$(${pkgs.coreutils}/bin/date -u +%Y-%m-01) -1 day" +%Y-%m)
        # Bundles are verified with the public keys beside the key file; the manifest is signed
        # with the key the unit receives as a credential.
        exec ${agentExe} packet --month "$month" --client ${lib.escapeShellArg cfg.clientId} \
          --evidence-dir ${lib.escapeShellArg cfg.settings.evidence_dir} \
          ${keyDirArg} --keys ${lib.escapeShellArg packetPublicKeys} \
          --out "/var/lib/msp/packets/$month"
      ''
    );
    systemd.timers.msp-agent-packet = lib.mkIf cfg.packet.enable {
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnCalendar = cfg.packet.onCalendar;
        Persistent = true;
        RandomizedDelaySec = "1h";
      };
    };

    # Scheduled verification: the whole store (a pruned store starts at its signed prune
    # record, so the work stays bounded by the local retention).
    systemd.services.msp-agent-evidence-verify = lib.mkIf cfg.evidenceVerify.enable (
      jobUnit "msp-agent daily evidence verification" ''
        exec ${agentExe} evidence verify --keys ${lib.escapeShellArg packetPublicKeys} \
          --alert-config /etc/msp/agent.yaml \
          ${lib.escapeShellArg cfg.settings.evidence_dir}
      ''
    );
    systemd.timers.msp-agent-evidence-verify = lib.mkIf cfg.evidenceVerify.enable {
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnCalendar = cfg.evidenceVerify.onCalendar;
        Persistent = true;
        RandomizedDelaySec = "30m";
      };
    };

    systemd.services.msp-agent-evidence-prune = lib.mkIf cfg.evidencePrune.enable (
      jobUnit "msp-agent local evidence retention and disk check" ''
        exec ${agentExe} evidence prune \
          --evidence-dir ${lib.escapeShellArg cfg.settings.evidence_dir} \
          --state-dir ${lib.escapeShellArg cfg.settings.state_dir} \
          ${keyDirArg} --config /etc/msp/agent.yaml \
          --local-retention-days ${toString cfg.evidencePrune.localRetentionDays} \
          --disk-alert-percent ${toString cfg.evidencePrune.diskAlertPercent}
      ''
    );
    systemd.timers.msp-agent-evidence-prune = lib.mkIf cfg.evidencePrune.enable {
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnCalendar = cfg.evidencePrune.onCalendar;
        Persistent = true;
        RandomizedDelaySec = "30m";
      };
    };

    systemd.services.msp-agent-worm-restore-test = lib.mkIf cfg.wormRestoreTest.enable (
      jobUnit "msp-agent monthly WORM restore test" ''
        # The config names the daemon's credential path; this unit has its own.
        exec ${agentExe} worm restore-test --config /etc/msp/agent.yaml \
          --evidence-dir ${lib.escapeShellArg cfg.settings.evidence_dir} \
          --state-dir ${lib.escapeShellArg cfg.settings.state_dir} \
          ${keyDirArg} --sample ${toString cfg.wormRestoreTest.sample} \
          ${lib.optionalString (cfg.worm.credentialsFile != null) ''--credentials-file "$CREDENTIALS_DIRECTORY/${wormCredential}"''}
      ''
    );
    systemd.timers.msp-agent-worm-restore-test = lib.mkIf cfg.wormRestoreTest.enable {
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnCalendar = cfg.wormRestoreTest.onCalendar;
        Persistent = true;
        RandomizedDelaySec = "1h";
      };
    };
  };
}
