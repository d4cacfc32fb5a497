# Pure CI check (builtins only, no nixpkgs): no option nixpkgs merges uniquely is defined
# twice at its winning priority across msp-flake's modules and nixpkgs' own definitions.
#
#  - boot.kernel.sysctl."<key>": nixpkgs' sysctl.nix merges each key with mergeOneOption
#    after priority filtering: two definitions at the winning priority fail even when equal.
#  - security.audit.enable: an enum (mergeEqualOption): two different values at the winning
#    priority fail (our "lock" against auditd.nix's own `mkDefault true`).
#
# modules/hardening.nix and modules/auditd.nix are evaluated as written, with a small
# stand-in `lib` whose mkDefault/mkOverride/mkIf record what they wrap (FAKE: only the few
# lib functions those two modules call; a new call fails this check loudly). The baseline's
# definitions come from modules/lib/baseline.nix (definitions, priority, ownedElsewhere), as
# modules/baseline.nix uses them; nixpkgs' own from nix/nixpkgs-definitions.nix.
# scripts/check-nix runs it; `selfTest` re-introduces the two confirmed conflicts and must
# find them, so the check is known to fail when it should.
let
  inherit (builtins)
    attrNames
    concatLists
    filter
    foldl'
    head
    length
    listToAttrs
    map
    mapAttrs
    sort
    ;

  baselineLib = import ../../modules/lib/baseline.nix;
  rendered = import ../../baseline/rendered/baseline.nix;
  nixpkgs = import ../../nix/nixpkgs-definitions.nix;

  # What the stand-in lib's wrappers record.
  mkOverride = priority: content: {
    _type = "override";
    inherit priority content;
  };
  mkDefault = mkOverride 1000;
  mkIf = condition: content: {
    _type = "if";
    inherit condition content;
  };
  fakeType = _: "type";
  fakeLib = {
    inherit mkOverride mkDefault mkIf mapAttrs;
    mkOption = x: x;
    mkEnableOption = d: { description = d; };
    literalExpression = t: t;
    concatLines = ls: builtins.concatStringsSep "\n" ls + "\n";
    types = {
      strMatching = fakeType;
      listOf = fakeType;
      str = "type";
      bool = "type";
    };
  };

  # Resolve mkIf (by its condition) down a path; null when a condition is false or absent.
  at =
    path: v:
    if v == null then
      null
    else if builtins.isAttrs v && (v._type or null) == "if" then
      (if v.condition then at path v.content else null)
    else if path == [ ] then
      v
    else if builtins.isAttrs v && v ? ${head path} then
      at (builtins.tail path) v.${head path}
    else
      null;

  # A definition as { priority; value } (100 for a plain value), or null under a false mkIf.
  def =
    v:
    if builtins.isAttrs v && (v._type or null) == "if" then
      (if v.condition then def v.content else null)
    else if builtins.isAttrs v && (v._type or null) == "override" then
      let
        inner = def v.content;
      in
      if inner == null then null else inner // { inherit (v) priority; }
    else
      {
        priority = 100;
        value = v;
      };

  # The msp modules' `config`, evaluated with the stand-in lib and a host's config values.
  moduleConfig =
    file: config:
    (import file {
      inherit config;
      lib = fakeLib;
      options = { };
      pkgs = { };
    }).config;

  hostConfig =
    { baselineEnabled, lock ? true }:
    {
      msp.baseline.enable = baselineEnabled;
      msp.hardening = {
        enable = true;
        journalRetention = "2year";
        journalMaxUse = "8G";
        ntpServers = [ ];
      };
      msp.auditd = {
        enable = true;
        inherit lock;
        rules = [ ];
        extraRules = [ ];
      };
      security.audit = {
        enable = if lock then "lock" else true;
        rules = [ ];
      };
    };

  # The baseline module's definitions (modules/baseline.nix does exactly this, with lib).
  baselineDefs =
    { baselineEnabled, config }:
    if !baselineEnabled then
      [ ]
    else
      baselineLib.definitions {
        baseline = rendered;
        mkDefault = mkOverride baselineLib.priority;
        wrap =
          key: value:
          if baselineLib.ownedElsewhere ? ${key} then
            mkIf (!(foldl' (acc: k: if acc ? ${k} then acc.${k} else false) config baselineLib.ownedElsewhere.${key})) value
          else
            value;
      };

  # Sources of one option path: [ { source; defs = attrset or value } ].
  sources =
    { baselineEnabled, lock ? true, extra ? [ ] }:
    let
      config = hostConfig { inherit baselineEnabled lock; };
    in
    [
      {
        source = "modules/hardening.nix";
        cfg = moduleConfig ../../modules/hardening.nix config;
      }
      {
        source = "modules/auditd.nix";
        cfg = moduleConfig ../../modules/auditd.nix config;
      }
    ]
    ++ map (d: {
      source = "modules/baseline.nix (baseline/rendered/baseline.nix)";
      cfg = d;
    }) (baselineDefs { inherit baselineEnabled config; })
    ++ [
      {
        source = "nixpkgs sysctl.nix";
        cfg.boot.kernel.sysctl = mapAttrs (_: d: mkOverride d.priority d.value) nixpkgs.sysctl;
      }
      {
        # auditd.nix defines it when security.auditd.enable, which msp.auditd sets.
        source = "nixpkgs auditd.nix";
        cfg.security.audit.enable = mkOverride nixpkgs."security.audit.enable".priority nixpkgs."security.audit.enable".value;
      }
    ]
    ++ extra;

  # Definitions that survive priority filtering: those at the lowest priority number.
  winners =
    defs:
    let
      live = filter (d: d.def != null) defs;
      top = foldl' (m: d: if d.def.priority < m then d.def.priority else m) 10000 live;
    in
    filter (d: d.def.priority == top) live;

  sysctlDefs =
    srcs:
    let
      perSource = map (s: {
        inherit (s) source;
        set = at [ "boot" "kernel" "sysctl" ] s.cfg;
      }) srcs;
      keys = attrNames (listToAttrs (concatLists (map (p: map (k: { name = k; value = null; }) (attrNames (if p.set == null then { } else p.set))) perSource)));
    in
    map (k: {
      key = k;
      defs = concatLists (
        map (
          p:
          if p.set != null && p.set ? ${k} then
            [
              {
                inherit (p) source;
                def = def p.set.${k};
              }
            ]
          else
            [ ]
        ) perSource
      );
    }) keys;

  # Unique merge: more than one winner is a conflict.
  sysctlConflicts =
    srcs:
    map (x: {
      option = "boot.kernel.sysctl.\"${x.key}\"";
      defined_by = map (d: "${d.source} at priority ${toString d.def.priority}") (winners x.defs);
    }) (filter (x: length (winners x.defs) > 1) (sysctlDefs srcs));

  # Equal merge: winners with different values are a conflict.
  auditConflicts =
    srcs:
    let
      defs = concatLists (
        map (
          s:
          let
            v = at [ "security" "audit" ] s.cfg;
          in
          if v != null && v ? enable then
            [
              {
                inherit (s) source;
                def = def v.enable;
              }
            ]
          else
            [ ]
        ) srcs
      );
      w = winners defs;
      values = map (d: d.def.value) w;
    in
    if length w > 1 && filter (v: v != head values) values != [ ] then
      [
        {
          option = "security.audit.enable";
          defined_by = map (d: "${d.source} at priority ${toString d.def.priority}: ${builtins.toJSON d.def.value}") w;
        }
      ]
    else
      [ ];

  conflicts = srcs: sysctlConflicts srcs ++ auditConflicts srcs;

  # The baseline's sysctl keys must not be in hardening's own extras (one owner per key).
  hardeningOwn = attrNames (at [ "boot" "kernel" "sysctl" ] (moduleConfig ../../modules/hardening.nix (hostConfig { baselineEnabled = true; })));
in
{
  # Every combination msp-flake supports: baseline on or off, audit locked or not.
  conflicts = concatLists (
    map (c: map (x: x // { case = "baseline ${if c.baselineEnabled then "on" else "off"}, lock ${if c.lock then "on" else "off"}"; }) (conflicts (sources c))) [
      { baselineEnabled = true; lock = true; }
      { baselineEnabled = true; lock = false; }
      { baselineEnabled = false; lock = true; }
      { baselineEnabled = false; lock = false; }
    ]
  );

  # Hardening's own sysctls while the baseline is on: none of the baseline's keys.
  hardeningOverlap = filter (k: builtins.elem k (attrNames (baselineLib.sysctlsOf rendered))) hardeningOwn;

  # The two confirmed conflicts, re-introduced: this check must find both.
  selfTest = {
    # The pre-fix modules: hardening and the baseline both at mkDefault for the same keys.
    sysctlPreFix = sort builtins.lessThan (
      map (x: x.option) (
        sysctlConflicts [
          {
            source = "pre-fix hardening";
            cfg.boot.kernel.sysctl = mapAttrs (_: mkDefault) (baselineLib.sysctlsOf rendered);
          }
          {
            source = "pre-fix baseline";
            cfg.boot.kernel.sysctl = mapAttrs (_: mkDefault) (baselineLib.sysctlsOf rendered);
          }
          {
            source = "nixpkgs sysctl.nix";
            cfg.boot.kernel.sysctl = mapAttrs (_: d: mkOverride d.priority d.value) nixpkgs.sysctl;
          }
        ]
      )
    );
    # The pre-fix msp.auditd: mkDefault "lock" against auditd.nix's mkDefault true.
    auditPreFix =
      auditConflicts [
        {
          source = "pre-fix msp.auditd";
          cfg.security.audit.enable = mkDefault "lock";
        }
        {
          source = "nixpkgs auditd.nix";
          cfg.security.audit.enable = mkDefault true;
        }
      ] != [ ];
  };
}
