# The baseline-to-assertions logic, as a PURE function (builtins only, no nixpkgs).
#
#   evaluate { baseline, exceptions, config, today } -> { results, violations, assertions, warnings, ... }
#   definitions { baseline, mkDefault, wrap ? (key: value: value) } -> [ attrset ]   (for mkMerge)
#
# - baseline:   the rendered baseline, baseline/rendered/baseline.nix (format 1, documented in
#               baseline/README.md). Every rule with `enforce = true` and a `nixos_option_path`
#               becomes one assertion; enforced rules without an option are enforced by the
#               modules their own way and listed in `unasserted`.
# - exceptions: the rendered exceptions of one client (baseline/rendered/exceptions-<client>.nix,
#               `{ overrides = { "<rule key>" = { value, expires, ... }; }; }`), a list of
#               records `{ rule, expires, justification, approved_by, value?, baseline_value? }`,
#               or null.
# - config:     a config-like attrset: a NixOS `config`, or a plain attrset in tests. Only the
#               option paths the baseline names are read, lazily.
# - today:      "YYYY-MM-DD" (UTC). Pure evaluation has no clock, so the caller passes it in.
# - facts:      optional { "<rule key>" = { ok; requirement; actual; }; } for what one option
#               cannot express (a LUKS device exists, journald retention, daily backups). A fact
#               for a rule without an option makes it checked; a fact for a rule with one is an
#               extra condition. An exception covers a failed fact whatever its value.
#
# Comparison (`compare` in the baseline): eq (lists compare as sets: order and duplicates do
# not matter, since several modules may contribute to one list), at_most, at_least,
# includes (every listed element present).
#
# An exception is valid through its `expires` day (UTC): valid when expires >= today, expired
# when expires < today. A valid exception with an override `value` covers the rule only when
# the host meets the override (compared the rule's way); one without a value covers any value.
# Expired, malformed, stale (baseline_value no longer the baseline's) or unknown-rule
# exceptions never excuse anything and are themselves reported, so an expired exception fails
# the build instead of lingering as "waived" (the InSpec waiver bug, DESIGN.md 7).
let
  inherit (builtins)
    all
    any
    attrNames
    attrValues
    concatLists
    concatStringsSep
    elem
    filter
    foldl'
    hasAttr
    head
    isAttrs
    isList
    isString
    length
    map
    toJSON
    ;

  date = import ./date.nix;

  # Walk `path` (list of attribute names) into `set`; null when any step is missing.
  getPath =
    set: path:
    foldl' (acc: name: if acc != null && isAttrs acc && hasAttr name acc then acc.${name} else null) set path;

  show = v: if v == null then "unset" else toJSON v;

  sameSet = a: b: all (x: elem x b) a && all (x: elem x a) b;

  comparators = {
    eq = expected: actual: if isList expected then isList actual && sameSet expected actual else actual == expected;
    at_most = expected: actual: actual != null && !(isList actual) && !(isAttrs actual) && actual <= expected;
    at_least = expected: actual: actual != null && !(isList actual) && !(isAttrs actual) && actual >= expected;
    includes = expected: actual: isList actual && all (e: elem e actual) expected;
  };
  describe = {
    eq = "=";
    at_most = "<=";
    at_least = ">=";
    includes = "to include";
  };

  # Every rule of the rendered baseline, in `keys` order.
  allRules = baseline: concatLists (map (s: map (r: baseline.rules.${s}.${r}) (attrNames baseline.rules.${s})) (attrNames baseline.rules));

  # The rules this file asserts: enforced, with a NixOS option.
  settingsOf = baseline: filter (r: r.enforce or false && r.nixos_option_path or null != null) (allRules baseline);
  unasserted = baseline: map (r: r.key) (filter (r: r.enforce or false && r.nixos_option_path or null == null) (allRules baseline));

  # Exceptions in one shape: { id, rule, expires, approved_by, reason, hasValue, value, hasBaselineValue, baseline_value }.
  normalizeExceptions =
    exceptions:
    let
      one = e: {
        id = e.id or e.rule or e.key or "(no id)";
        rule = e.rule or e.key or null;
        expires = e.expires or null;
        approved_by = e.approved_by or null;
        reason = e.justification or e.reason or null;
        hasValue = e ? value || e ? override_value;
        value = e.value or e.override_value or null;
        hasBaselineValue = e ? baseline_value;
        baseline_value = e.baseline_value or null;
      };
    in
    if exceptions == null then
      [ ]
    else if isList exceptions then
      map one exceptions
    else if isAttrs exceptions && exceptions ? overrides then
      map one (attrValues exceptions.overrides)
    else
      throw "baseline.nix: exceptions must be a list of records or a rendered exceptions file ({ overrides = ...; }), got ${toJSON exceptions}";

  nonEmpty = s: isString s && s != "";

  evaluate =
    {
      baseline,
      exceptions ? null,
      config,
      today,
      facts ? { },
    }:
    let
      name = "${baseline.name or "baseline"} ${baseline.version or ""}";
      knownKeys = map (r: r.key) (allRules baseline);
      ruleByKey = k: head (filter (r: r.key == k) (allRules baseline));

      checkedToday =
        if date.isDate today then today else throw "baseline.nix: `today` must be a YYYY-MM-DD date (UTC), got ${show today}";

      excs = normalizeExceptions exceptions;
      staleFile =
        isAttrs exceptions
        && exceptions ? baseline_sha256
        && baseline ? sha256
        && exceptions.baseline_sha256 != null
        && exceptions.baseline_sha256 != baseline.sha256;

      problemsOf =
        e:
        (if isString e.rule then [ ] else [ "has no `rule`" ])
        ++ (if isString e.rule && !(elem e.rule knownKeys) then [ "names rule ${e.rule}, which the baseline does not have" ] else [ ])
        ++ (if date.isDate e.expires then [ ] else [ "has no valid `expires` date (YYYY-MM-DD, UTC): ${show e.expires}" ])
        ++ (if nonEmpty e.reason then [ ] else [ "has no justification" ])
        ++ (if nonEmpty e.approved_by then [ ] else [ "has no `approved_by`" ])
        ++ (
          if e.hasBaselineValue && isString e.rule && elem e.rule knownKeys && !(comparators.eq (ruleByKey e.rule).value e.baseline_value) then
            [ "was approved against baseline value ${show e.baseline_value}, but the baseline now requires ${show (ruleByKey e.rule).value}; re-approve it" ]
          else
            [ ]
        );

      exceptionErrors =
        (if staleFile then [ "msp-flake ${name}: the rendered exceptions of client ${exceptions.client or "?"} were made for another baseline (sha256 ${exceptions.baseline_sha256}); run `msp-agent baseline render` again." ] else [ ])
        ++ concatLists (map (e: map (p: "msp-flake ${name}: exception ${e.id} (${show e.rule}) ${p}. Fix the exception record (baseline/README.md, section 3).") (problemsOf e)) excs);

      wellFormed = filter (e: problemsOf e == [ ]) excs;

      resultOf =
        r:
        let
          hasOption = r.nixos_option_path or null != null;
          cmp = comparators.${r.compare} or (throw "baseline.nix: rule ${r.key} has unknown compare `${r.compare}`");
          actual = if hasOption then getPath config r.nixos_option_path else null;
          optionOk = !hasOption || cmp r.value actual;
          fact = facts.${r.key} or null;
          factOk = fact == null || fact.ok;
          compliant = optionOk && factOk;
          mine = filter (e: e.rule == r.key) wellFormed;
          valid = filter (e: e.expires >= checkedToday) mine;
          expired = filter (e: e.expires < checkedToday) mine;
          # An override value is compared with the option; a fact has no value to compare.
          covering = filter (e: !e.hasValue || !hasOption || (cmp e.value actual && factOk)) valid;
          status =
            if compliant then
              "compliant"
            else if covering != [ ] then
              "excepted"
            else if valid != [ ] then
              "exception-mismatch"
            else if expired != [ ] then
              "exception-expired"
            else
              "violation";
          controls = if r.citation or [ ] == [ ] then "no HIPAA control listed" else "HIPAA ${concatStringsSep ", " r.citation}";
          headline =
            if !optionOk then
              "msp-flake ${name}: rule ${r.key} (${controls}) requires ${r.nixos_option} ${describe.${r.compare}} ${show r.value}, but ${if actual == null then "this host leaves it unset" else "this host has ${show actual}"}. ${r.why or ""}"
            else
              "msp-flake ${name}: rule ${r.key} (${controls}) requires ${fact.requirement}, but ${fact.actual}. ${r.why or ""}";
          note =
            if status == "exception-mismatch" then
              " Exception ${(head valid).id} (until ${(head valid).expires}) allows ${r.nixos_option} ${describe.${r.compare}} ${show (head valid).value}, which this host does not meet either."
            else if status == "exception-expired" then
              " Exception ${(head expired).id} expired on ${(head expired).expires} (evaluation date ${checkedToday}, UTC) and no longer applies."
            else
              "";
          process = " Fix the host, or get an exception approved: add it to baseline/exceptions/<client>.yaml (rule = \"${r.key}\", override_value, justification, approved_by, expires; process in baseline/README.md, section 3), and run `msp-agent baseline render` (msp.baseline.exceptions then loads baseline/rendered/exceptions-<client>.nix).";
        in
        {
          rule = r.key;
          option = r.nixos_option or null;
          inherit (r) compare value;
          hipaa_controls = r.citation or [ ];
          inherit actual status;
          fact = if fact == null then null else fact.requirement;
          ok = status == "compliant" || status == "excepted";
          exception = if covering != [ ] then (head covering).id else null;
          exceptionExpires = if covering != [ ] then (head covering).expires else null;
          message = if status == "compliant" || status == "excepted" then null else "${headline}${note}${process}";
        };

      # Enforced rules the host is checked against: those with a NixOS option, and those
      # without one for which the caller supplied a fact.
      checked = filter (r: r.enforce or false && (r.nixos_option_path or null != null || facts ? ${r.key})) (allRules baseline);
      results = map resultOf checked;
      failing = filter (r: !r.ok) results;
      # An exception for a rule the host meets anyway is harmless but probably left over.
      unused = filter (e: any (r: r.rule == e.rule && r.status == "compliant") results) wellFormed;
    in
    {
      inherit results exceptionErrors;
      today = checkedToday;
      unasserted = filter (k: !(facts ? ${k})) (unasserted baseline);
      violations = map (r: r.message) failing ++ exceptionErrors;
      # NixOS-style assertions: one per enforced rule with an option, one per bad exception.
      assertions =
        map (r: {
          assertion = r.ok;
          message = if r.message == null then "" else r.message;
        }) results
        ++ map (m: {
          assertion = false;
          message = m;
        }) exceptionErrors;
      warnings =
        map (r: "msp-flake ${name}: rule ${r.rule} is not met (${r.option} = ${show r.actual}) under exception ${r.exception} until ${r.exceptionExpires}.") (
          filter (r: r.status == "excepted") results
        )
        ++ map (e: "msp-flake ${name}: exception ${e.id} for ${e.rule} is not needed (the host meets the baseline); remove it.") unused;
    };

  # The configuration the baseline implies, as a list of attrsets for mkMerge. `eq`/`at_*`
  # values are wrapped with the caller's `mkDefault` (the NixOS module passes
  # `mkOverride priority`, below), so a host may still set something else (the assertion then
  # decides, with the rule's message, instead of a bare "conflicting definitions" error);
  # `includes` lists are set at normal priority so they merge with the host's own entries.
  # `wrap key value` lets the module guard a definition (e.g. with mkIf).
  definitions =
    {
      baseline,
      mkDefault,
      wrap ? (_key: value: value),
    }:
    map (
      r:
      let
        value = wrap r.key (if r.compare == "includes" then r.value else mkDefault r.value);
        path = r.nixos_option_path;
        n = length path;
      in
      foldl' (acc: i: { ${builtins.elemAt path (n - 1 - i)} = acc; }) value (builtins.genList (i: i) n)
    ) (settingsOf baseline);
  # The priority of the baseline's settings: 900, between nixpkgs' own `mkDefault` (1000) and
  # a host's plain definition (100). Above mkDefault because nixpkgs defines some of the same
  # options itself at mkDefault (sysctl.nix: "kernel.kptr_restrict" = mkDefault 1; auditd.nix:
  # security.audit.enable = mkDefault true), and two values at one priority are an error
  # (sysctl keys even when equal: mergeOneOption). Below 100 so a host's contrary value still
  # reaches the baseline's assertion, with its rule and exception process.
  priority = 900;

  # Rules that one msp module owns when it is enabled, so the baseline does not define them a
  # second time (key -> the config flag of that module, read by the NixOS module's `wrap`).
  # msp.auditd loads the baseline's audit rules with the operator's extra rules (adding them
  # twice would make `auditctl -R` fail with "Rule exists"), and sets audit.enable from its
  # `lock` option; msp.hardening's sysctls of baseline rules are defined only when the
  # baseline is off (modules/hardening.nix).
  ownedElsewhere = {
    "audit.rules" = [ "msp" "auditd" "enable" ];
    "audit.audit_enable" = [ "msp" "auditd" "enable" ];
  };

  # The sysctl keys (and values) the baseline sets, for msp.hardening's one-owner rule.
  sysctlsOf =
    baseline:
    builtins.listToAttrs (
      map (r: {
        name = builtins.elemAt r.nixos_option_path 3;
        inherit (r) value;
      }) (filter (r: length r.nixos_option_path == 4 && builtins.genList (i: builtins.elemAt r.nixos_option_path i) 3 == [ "boot" "kernel" "sysctl" ]) (settingsOf baseline))
    );
in
{
  inherit
    priority
    ownedElsewhere
    sysctlsOf
    evaluate
    definitions
    getPath
    settingsOf
    unasserted
    normalizeExceptions
    date
    ;
}
