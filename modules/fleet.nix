# services.msp-fleet: the MSP's fleet view (`msp-fleet serve`) on the MSP's own machine, not on
# clinic hosts. It reads the agents' signed evidence from the WORM bucket (or a local mirror
# of it), keeps a disposable SQLite index in its state directory, and serves the web UI and
# JSON API (DESIGN.md 4b). Its secrets (read-only S3 credentials, the token hashes, the
# webhook URL) are systemd credentials: read from the host at start, never in the Nix store.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.services.msp-fleet;
  yaml = pkgs.formats.yaml { };
  inherit (lib) mkOption types;

  # The unit's credential directory ($CREDENTIALS_DIRECTORY, `%d` in unit files) for a system
  # service. fleet.yaml names the files there, since YAML cannot expand `%d`.
  unitName = "msp-fleet.service";
  credentialsDir = "/run/credentials/${unitName}";
  credential = {
    s3 = "s3-credentials";
    tokens = "tokens";
    webhook = "webhook-url";
  };

  # "HOST:PORT" or "[V6]:PORT" (a Rust SocketAddr), split without a regex library.
  listenParts =
    let
      v6 = builtins.match "\\[([0-9A-Fa-f:.]+)](:([0-9]+))" cfg.settings.listen;
      v4 = builtins.match "([0-9.]+):([0-9]+)" cfg.settings.listen;
    in
    if v6 != null then
      {
        host = builtins.elemAt v6 0;
        port = lib.toInt (builtins.elemAt v6 2);
      }
    else if v4 != null then
      {
        host = builtins.elemAt v4 0;
        port = lib.toInt (builtins.elemAt v4 1);
      }
    else
      null;
  # 127.0.0.0/8 and ::1 (also written out in full, or as an IPv4-mapped address).
  loopback =
    listenParts != null
    && (
      builtins.match "127\\.[0-9]+\\.[0-9]+\\.[0-9]+" listenParts.host != null
      || builtins.elem (lib.toLower listenParts.host) [
        "::1"
        "0:0:0:0:0:0:0:1"
      ]
      || builtins.match "::[fF]{4}:127\\.[0-9.]+" listenParts.host != null
    );

  # Remove nulls, and sections left empty by that: unset keys are absent from fleet.yaml and
  # msp-fleet's own defaults apply (its parser is strict: unknown keys are errors, absent keys
  # take defaults, so the defaults have one source, fleet/src/config.rs).
  dropNulls =
    v:
    if builtins.isAttrs v then
      lib.filterAttrs (_: x: x != null && x != { }) (lib.mapAttrs (_: dropNulls) v)
    else if builtins.isList v then
      map dropNulls v
    else
      v;
  rendered = dropNulls cfg.settings;
  configFile = yaml.generate "msp-fleet.yaml" rendered;

  inventoryFile =
    if cfg.inventory == null then
      null
    # A path, a string or a derivation (a file someone built): used as it is.
    else if lib.isStringLike cfg.inventory then
      cfg.inventory
    else
      # Public keys and ids only (no secret): the store is the right place for it.
      pkgs.writeText "msp-fleet-inventory.json" (builtins.toJSON cfg.inventory);

  credentials =
    lib.optional (cfg.s3CredentialsFile != null) "${credential.s3}:${cfg.s3CredentialsFile}"
    ++ lib.optional (cfg.tokensFile != null) "${credential.tokens}:${cfg.tokensFile}"
    ++ lib.optional (cfg.webhookUrlFile != null) "${credential.webhook}:${cfg.webhookUrlFile}";

  exe = lib.getExe cfg.package;
  privilegedPort = listenParts != null && listenParts.port < 1024;

  secretPath =
    what:
    mkOption {
      type = types.nullOr (types.strMatching "/.*");
      default = null;
      example = "/etc/msp-fleet/${what.example}";
      description = ''
        Absolute path, on the host, of ${what.text}. A string, not a Nix path, so the file never
        enters the world-readable Nix store; systemd passes it to the service as the credential
        `${what.name}` (`LoadCredential=`), readable by the service only, and fleet.yaml names
        `${credentialsDir}/${what.name}`.
      '';
    };

  notInStore = name: value: {
    assertion = value == null || !(lib.hasPrefix builtins.storeDir value);
    message = "services.msp-fleet.${name} points into the Nix store (${toString value}), which is world-readable. Keep it on the host, e.g. under /etc/msp-fleet (mode 0400).";
  };
in
{
  options.services.msp-fleet = {
    enable = lib.mkEnableOption "the msp-fleet fleet view (web UI, API and silence alerts over the agents' WORM evidence)";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ../nix/package.nix { program = "msp-fleet"; };
      defaultText = lib.literalExpression "msp-flake's msp-fleet package (nix/package.nix with program = \"msp-fleet\")";
      description = "The msp-fleet package to run.";
    };

    s3CredentialsFile = secretPath {
      name = credential.s3;
      example = "s3-credentials";
      text = "the read-only S3 credentials for `settings.source.s3` (the agent's worm credentials format: `[default]` with `aws_access_key_id`, `aws_secret_access_key`, optional `aws_session_token`)";
    };
    tokensFile = secretPath {
      name = credential.tokens;
      example = "tokens";
      text = "the login tokens: one `SCOPE SHA256HEX` per line (`operator` or `client:ID`, the hex SHA-256 of the token). Without it nobody can log in; every page but `/healthz` is refused";
    };
    webhookUrlFile = secretPath {
      name = credential.webhook;
      example = "webhook-url";
      text = "the file holding the alert webhook URL (URLs often embed a secret)";
    };

    inventory = mkOption {
      type = types.nullOr (types.either types.path (types.attrsOf types.anything));
      default = null;
      example = lib.literalExpression ''
        msp-flake.lib.mspFleetInventory {
          inherit (self) nixosConfigurations;
          hostsDir = ./hosts;
        }
      '';
      description = ''
        The fleet inventory: clients, hosts, heartbeat intervals and public keys (format in the
        README, "Fleet view on NixOS"). One of: the inventory itself as a Nix value, written to
        the store as JSON (typically `msp-flake.lib.mspFleetInventory`'s output for your
        `nixosConfigurations`); a file on the host as a string (`"/etc/msp-fleet/inventory.json"`,
        whose `key_dir` entries are relative to it); or a Nix path, copied to the store on its
        own (so it should list its keys inline rather than by `key_dir`).
      '';
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Open the port of `settings.listen` in the firewall. Off by default: the UI listens on
        loopback unless told otherwise, and a non-loopback address needs `tokensFile`.
      '';
    };

    settings = mkOption {
      description = ''
        fleet.yaml (`fleet/src/config.rs`), linked at `/etc/msp-fleet/fleet.yaml`. The typed
        options are every key msp-fleet knows; msp-fleet's parser is strict, so any other key
        (allowed here, freeform, for a newer msp-fleet) must be one it knows, or
        `check-config` refuses the file at start. Unset (`null`) keys are left out and
        msp-fleet's own defaults apply.
      '';
      default = { };
      type = types.submodule {
        freeformType = yaml.type;
        options = {
          source = {
            s3 = mkOption {
              default = null;
              description = "The WORM bucket, read with read-only credentials; exactly one of `s3` and `local`.";
              type = types.nullOr (
                types.submodule {
                  freeformType = yaml.type;
                  options = {
                    endpoint = mkOption {
                      type = types.str;
                      example = "https://s3.us-east-2.amazonaws.com";
                      description = "S3 endpoint URL (`https://s3.REGION.amazonaws.com` or any S3-compatible endpoint).";
                    };
                    region = mkOption {
                      type = types.str;
                      example = "us-east-2";
                      description = "SigV4 region.";
                    };
                    bucket = mkOption {
                      type = types.str;
                      description = "The Object Lock bucket the agents upload to.";
                    };
                    credentials_file = mkOption {
                      type = types.nullOr types.str;
                      default = if cfg.s3CredentialsFile != null then "${credentialsDir}/${credential.s3}" else null;
                      defaultText = lib.literalExpression ''"${credentialsDir}/${credential.s3}" when s3CredentialsFile is set'';
                      description = "Where msp-fleet reads the S3 credentials: the systemd credential made from {option}`services.msp-fleet.s3CredentialsFile`.";
                    };
                  };
                }
              );
            };
            local = mkOption {
              type = types.nullOr types.str;
              default = null;
              example = "/srv/msp-evidence-mirror";
              description = ''
                A directory with the bucket's layout (`PREFIX/CLIENT/HOST/YYYY/MM/FILE`), e.g. a
                mirror made with `aws s3 sync`; exactly one of `s3` and `local`. The service
                runs as a dynamic user, so the tree must be readable by others (or add a
                group with `systemd.services.msp-fleet.serviceConfig.SupplementaryGroups`).
              '';
            };
            prefix = mkOption {
              type = types.nullOr types.str;
              default = null;
              description = "The key prefix the agents upload under (the agent's `worm.prefix`); msp-fleet's default `msp-evidence`.";
            };
          };
          index = mkOption {
            type = types.str;
            default = "/var/lib/msp-fleet/index.sqlite";
            description = "The SQLite index, in the service's state directory (disposable: `msp-fleet index --rebuild` makes it again from the source).";
          };
          inventory = mkOption {
            type = types.nullOr types.str;
            default = if inventoryFile == null then null else "${inventoryFile}";
            defaultText = lib.literalExpression "the file of services.msp-fleet.inventory";
            description = "The inventory file msp-fleet reads (set from {option}`services.msp-fleet.inventory`).";
          };
          controls_map = mkOption {
            type = types.nullOr types.str;
            default = null;
            description = "The controls map (CSV); the baseline's `controls-map.csv` embedded in msp-fleet when unset.";
          };
          exceptions_dir = mkOption {
            type = types.nullOr types.str;
            default = null;
            description = "Signed-off exceptions (the baseline's `exceptions/` layout), optional.";
          };
          listen = mkOption {
            type = types.str;
            default = "127.0.0.1:8427";
            example = "[::]:8427";
            description = ''
              Address of the web UI and API (`HOST:PORT`, `[V6]:PORT`). Loopback by default; a
              non-loopback address needs {option}`services.msp-fleet.tokensFile`.
            '';
          };
          poll_interval_seconds = mkOption {
            type = types.nullOr types.ints.positive;
            default = null;
            description = "Seconds between two polls of the source in `serve` (msp-fleet default 300).";
          };
          auth.tokens_file = mkOption {
            type = types.nullOr types.str;
            default = if cfg.tokensFile != null then "${credentialsDir}/${credential.tokens}" else null;
            defaultText = lib.literalExpression ''"${credentialsDir}/${credential.tokens}" when tokensFile is set'';
            description = "The token hashes: the systemd credential made from {option}`services.msp-fleet.tokensFile`.";
          };
          alerts = {
            webhook_url_file = mkOption {
              type = types.nullOr types.str;
              default = if cfg.webhookUrlFile != null then "${credentialsDir}/${credential.webhook}" else null;
              defaultText = lib.literalExpression ''"${credentialsDir}/${credential.webhook}" when webhookUrlFile is set'';
              description = "The webhook URL's file: the systemd credential made from {option}`services.msp-fleet.webhookUrlFile`.";
            };
            warn_after_intervals = mkOption {
              type = types.nullOr types.ints.positive;
              default = null;
              description = "Heartbeat intervals without new evidence before a `host_silent_warn` alert (msp-fleet default 2).";
            };
            page_after_intervals = mkOption {
              type = types.nullOr types.ints.positive;
              default = null;
              description = "Heartbeat intervals without new evidence before a `host_silent_page` alert (msp-fleet default 4; more than the warning's).";
            };
            fleet_silent_share = mkOption {
              type = types.nullOr (types.numbers.between 0 1);
              default = null;
              description = "Share of a client's hosts silent together that raises a `client_silent` alert, in (0, 1] (msp-fleet default 0.5).";
            };
          };
        };
      };
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = (cfg.settings.source.s3 != null) != (cfg.settings.source.local != null);
        message = "services.msp-fleet.settings.source: set exactly one of `s3` (the bucket) and `local` (a mirror directory).";
      }
      {
        assertion = cfg.settings.source.s3 == null || cfg.s3CredentialsFile != null;
        message = "services.msp-fleet.settings.source.s3 is set but services.msp-fleet.s3CredentialsFile is not: the bucket is read with read-only credentials passed as a systemd credential.";
      }
      {
        assertion = listenParts != null && listenParts.port >= 1 && listenParts.port <= 65535;
        message = "services.msp-fleet.settings.listen = \"${cfg.settings.listen}\" is not an address and port (e.g. 127.0.0.1:8427 or [::1]:8427).";
      }
      {
        assertion = loopback || cfg.tokensFile != null;
        message = "services.msp-fleet.settings.listen = \"${cfg.settings.listen}\" is not a loopback address, but services.msp-fleet.tokensFile is not set: a fleet view reachable from the network must require a login.";
      }
      {
        assertion = cfg.settings.inventory != null;
        message = "services.msp-fleet.inventory is not set (a file, or msp-flake.lib.mspFleetInventory's output).";
      }
      {
        assertion =
          let
            a = cfg.settings.alerts;
          in
          a.warn_after_intervals == null || a.page_after_intervals == null || a.warn_after_intervals < a.page_after_intervals;
        message = "services.msp-fleet.settings.alerts: warn_after_intervals must be less than page_after_intervals.";
      }
      {
        assertion = cfg.settings.alerts.fleet_silent_share != 0;
        message = "services.msp-fleet.settings.alerts.fleet_silent_share must be in (0, 1], not 0.";
      }
      (notInStore "s3CredentialsFile" cfg.s3CredentialsFile)
      (notInStore "tokensFile" cfg.tokensFile)
      (notInStore "webhookUrlFile" cfg.webhookUrlFile)
    ];

    environment.etc."msp-fleet/fleet.yaml".source = configFile;
    # `msp-fleet status|packet|index` by hand, with the same config.
    environment.systemPackages = [ cfg.package ];

    networking.firewall.allowedTCPPorts = lib.mkIf (cfg.openFirewall && listenParts != null) [ listenParts.port ];

    systemd.services.msp-fleet = {
      description = "msp-fleet fleet view";
      documentation = [ "https://github.com/msp-flake/msp-flake" ];
      wantedBy = [ "multi-user.target" ];
      after = [ "network-online.target" ];
      wants = [ "network-online.target" ];
      serviceConfig = {
        Type = "simple";
        # The config (and the files it names) is checked before the server starts, so a bad
        # file fails the start with its line and field instead of a half-running service.
        ExecStartPre = "${exe} check-config --config ${configFile}";
        ExecStart = "${exe} serve --config ${configFile}";
        Restart = "on-failure";
        RestartSec = 10;

        LoadCredential = credentials;

        # No account of its own: the index is the only thing it writes, in its state
        # directory (/var/lib/msp-fleet, owned by the dynamic user).
        DynamicUser = true;
        StateDirectory = "msp-fleet";
        StateDirectoryMode = "0700";
        UMask = "0077";

        NoNewPrivileges = true;
        CapabilityBoundingSet = if privilegedPort then [ "CAP_NET_BIND_SERVICE" ] else "";
        AmbientCapabilities = if privilegedPort then [ "CAP_NET_BIND_SERVICE" ] else "";
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        PrivateDevices = true;
        PrivateUsers = !privilegedPort;
        ProtectProc = "invisible";
        ProcSubset = "pid";
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectClock = true;
        ProtectHostname = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        RestrictNamespaces = true;
        RemoveIPC = true;
        LockPersonality = true;
        MemoryDenyWriteExecute = true;
        SystemCallArchitectures = "native";
        SystemCallFilter = [
          "@system-service"
          "~@privileged"
        ];
        RestrictAddressFamilies = [
          "AF_INET"
          "AF_INET6"
          "AF_UNIX"
        ];
        DevicePolicy = "closed";
      };
      # A crash loop ends in a failed unit the operator sees.
      unitConfig = {
        StartLimitBurst = 5;
        StartLimitIntervalSec = 300;
      };
    };
  };
}
