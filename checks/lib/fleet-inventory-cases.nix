# Test cases for the fleet inventory function (modules/lib/fleet-inventory.nix), with
# nixosConfigurations written as the values it reads (config.services.msp-agent.*,
# config.networking.hostName). Evaluated in CI by scripts/check-nix with
#   nix-instantiate --eval --strict --json checks/lib/fleet-inventory-cases.nix
# and compared with checks/lib/fleet-inventory-cases.expected.json (reviewed by hand against the
# inventory format in README.md, "Fleet view on NixOS"). The keys are real ssh-keygen public
# keys (checks/fixtures/fleet/README.md).
let
  inventory = import ../../modules/lib/fleet-inventory.nix;
  hostsDir = ../fixtures/fleet/hosts;

  # What the agent module gives a host: clientId, and settings with the defaults it sets
  # (client_id = clientId, hostname = networking.hostName, heartbeat unset = null).
  agentHost =
    {
      client,
      hostName,
      hostname ? hostName,
      heartbeat ? null,
      enable ? true,
    }:
    {
      config = {
        networking.hostName = hostName;
        services.msp-agent = {
          inherit enable;
          clientId = client;
          settings = {
            client_id = client;
            inherit hostname;
            heartbeat.interval_seconds = heartbeat;
          };
        };
      };
    };

  fleet = {
    clinic-001-srv-primary = agentHost {
      client = "clinic-001";
      hostName = "clinic-001-srv-primary";
    };
    clinic-001-srv-backup = agentHost {
      client = "clinic-001";
      hostName = "clinic-001-srv-backup";
      heartbeat = 300;
    };
    # The agent's settings.hostname overrides networking.hostName (and null falls back to it).
    clinic-002 = agentHost {
      client = "clinic-002";
      hostName = "nixos";
      hostname = "clinic-002-srv-01";
    };
    clinic-003 = agentHost {
      client = "clinic-003";
      hostName = "clinic-003-srv-01";
      hostname = null;
    };
    # Not hosts of the fleet: the agent is off, or the module is not imported at all (the
    # fleet machine itself).
    clinic-004-retired = agentHost {
      client = "clinic-004";
      hostName = "clinic-004-srv-01";
      enable = false;
    };
    fleet-view.config = {
      networking.hostName = "msp-fleet";
      services.msp-fleet.enable = true;
    };
  };

  fails = v: !(builtins.tryEval (builtins.deepSeq v v)).success;
in
{
  # The whole fleet, with a client name and keys for one host from its fleet-keys.json.
  fleet = inventory {
    nixosConfigurations = fleet;
    inherit hostsDir;
    clientNames.clinic-001 = "Clinic 001";
  };
  # Without hostsDir every host has an empty key list; a key_dir is passed through.
  noKeys = inventory {
    nixosConfigurations = {
      inherit (fleet) clinic-001-srv-primary clinic-003;
    };
    keyDirs.clinic-003 = "keys/clinic-003-srv-01";
  };
  # An empty fleet is a valid inventory.
  empty = inventory { nixosConfigurations = { inherit (fleet) fleet-view; }; };

  # Refused while evaluating, naming the file or the configurations:
  # a key object with a field KeyInfo does not have,
  unknownKeyField = fails (inventory {
    nixosConfigurations.bad-host = agentHost {
      client = "clinic-009";
      hostName = "bad-host";
    };
    inherit hostsDir;
  });
  # one host id in two configurations,
  duplicateHost = fails (inventory {
    nixosConfigurations = {
      a = agentHost {
        client = "clinic-001";
        hostName = "srv";
      };
      b = agentHost {
        client = "clinic-002";
        hostName = "srv";
      };
    };
  });
  # a host with no name at all.
  noHostName = fails (inventory {
    nixosConfigurations.anon = agentHost {
      client = "clinic-001";
      hostName = "";
    };
  });
}
