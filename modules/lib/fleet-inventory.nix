# The fleet inventory (the JSON msp-fleet reads: clients, hosts, heartbeat intervals, public
# keys), computed from a flake's nixosConfigurations. Builtins only, so CI evaluates it with
# the bare evaluator against hand-checked output (checks/lib/fleet-inventory-cases.nix), and a
# flake uses it as `msp-flake.lib.mspFleetInventory`:
#
#   services.msp-fleet.inventory = msp-flake.lib.mspFleetInventory {
#     inherit (self) nixosConfigurations;
#     hostsDir = ./hosts;            # hosts/<name>/fleet-keys.json, when present
#     clientNames.clinic-001 = "Clinic 001";
#   };
#
# Every configuration with services.msp-agent enabled is a host: its client is the agent's
# `settings.client_id` (default `clientId`), its id the agent's `settings.hostname` (default
# networking.hostName), which is what the agent writes into its object keys
# (PREFIX/CLIENT/HOST/...), and its heartbeat interval the agent's
# `settings.heartbeat.interval_seconds` (the agent's default 900 when unset). Its keys are
# `hostsDir/<configuration name>/fleet-keys.json`: a JSON list of the agent's key-info objects
# (key-info.json and archive/*.json from the host's key directory; public keys only), or
# `key_dir` from `keyDirs.<configuration name>` (an agent key directory, relative to the
# inventory file); a host with neither has no keys, and every bundle from it is shown as an
# integrity error until its keys are registered.
#
# Everything is checked here that can be without hashing a decoded key (msp-fleet checks that
# each public key hashes to its key_id): the fields of each key object, no host twice.
{
  nixosConfigurations,
  hostsDir ? null,
  keyDirs ? { },
  clientNames ? { },
  # The agent's heartbeat default (agent/src/config.rs, `heartbeat.interval_seconds`).
  defaultHeartbeatSeconds ? 900,
}:
let
  inherit (builtins)
    attrNames
    filter
    foldl'
    hasAttr
    isAttrs
    isList
    isString
    length
    listToAttrs
    map
    pathExists
    readFile
    fromJSON
    sort
    toJSON
    ;

  keyFields = {
    key_id = true;
    algorithm = true;
    public_key = true;
    created = true;
    valid_from = true;
    valid_until = false;
    compromised_since = false;
  };
  requiredKeyFields = filter (f: keyFields.${f}) (attrNames keyFields);

  fail = msg: throw "mspFleetInventory: ${msg}";

  checkKey =
    where: i: k:
    let
      at = "${where}[${toString i}]";
      unknown = filter (f: !(hasAttr f keyFields)) (attrNames k);
      missing = filter (f: !(hasAttr f k)) requiredKeyFields;
      strOrNull = f: !(hasAttr f k) || k.${f} == null || isString k.${f};
    in
    if !(isAttrs k) then
      fail "${at}: a key must be an object (the agent's key-info.json), got ${toJSON k}"
    else if unknown != [ ] then
      fail "${at}: unknown field(s) ${toJSON unknown} (allowed: ${toJSON (attrNames keyFields)})"
    else if missing != [ ] then
      fail "${at}: missing field(s) ${toJSON missing}"
    else if !(builtins.all (f: isString k.${f}) requiredKeyFields && strOrNull "valid_until" && strOrNull "compromised_since") then
      fail "${at}: every field is a string (valid_until may be null)"
    else if k.algorithm != "ed25519" then
      fail "${at}.algorithm: must be \"ed25519\", got ${toJSON k.algorithm}"
    else if builtins.match "SHA256:[A-Za-z0-9+/]{43}" k.key_id == null then
      fail "${at}.key_id: must be an OpenSSH SHA256 fingerprint (SHA256:<43 base64 characters>), got ${toJSON k.key_id}"
    else if builtins.match "ssh-ed25519 [A-Za-z0-9+/]+=*( .*)?" k.public_key == null then
      fail "${at}.public_key: must be an OpenSSH ssh-ed25519 line"
    else
      k;

  keysOf =
    name:
    let
      file = hostsDir + "/${name}/fleet-keys.json";
      where = "${toString hostsDir}/${name}/fleet-keys.json";
      keys = fromJSON (readFile file);
    in
    if hostsDir == null || !(pathExists file) then
      [ ]
    else if !(isList keys) then
      fail "${where}: must be a JSON list of key objects"
    else
      builtins.genList (i: checkKey where i (builtins.elemAt keys i)) (length keys);

  hostOf =
    name: config:
    let
      agent = config.services.msp-agent;
      settings = agent.settings or { };
      configured = settings.hostname or null;
      id =
        if configured != null && configured != "" then
          configured
        else if (config.networking.hostName or "") != "" then
          config.networking.hostName
        else
          fail "nixosConfigurations.${name}: no host name (set networking.hostName or services.msp-agent.settings.hostname): the fleet needs the name the agent uploads under";
      interval = settings.heartbeat.interval_seconds or null;
    in
    {
      inherit name id;
      client = settings.client_id or agent.clientId;
      entry = {
        inherit id;
        heartbeat_interval_seconds = if interval == null then defaultHeartbeatSeconds else interval;
      }
      // (if hasAttr name keyDirs then { key_dir = keyDirs.${name}; } else { keys = keysOf name; });
    };

  enabled = filter (name: nixosConfigurations.${name}.config.services.msp-agent.enable or false) (
    attrNames nixosConfigurations
  );
  hosts = map (name: hostOf name nixosConfigurations.${name}.config) enabled;

  # client id -> [ host ], each host id once in the whole fleet (object keys are CLIENT/HOST,
  # but msp-fleet's pages and alerts name hosts by id alone).
  byId = foldl' (
    acc: h:
    if hasAttr h.id acc then
      fail "host id ${h.id} is used by both nixosConfigurations.${acc.${h.id}.name} and nixosConfigurations.${h.name}"
    else
      acc // { ${h.id} = h; }
  ) { } hosts;
  clientIds = attrNames (listToAttrs (map (h: { name = h.client; value = null; }) (builtins.attrValues byId)));

  byIdSorted = list: sort (a: b: a.id < b.id) list;
in
{
  version = 1;
  clients = map (
    c:
    {
      id = c;
      hosts = byIdSorted (map (h: h.entry) (filter (h: h.client == c) (builtins.attrValues byId)));
    }
    // (if hasAttr c clientNames then { name = clientNames.${c}; } else { })
  ) clientIds;
}
