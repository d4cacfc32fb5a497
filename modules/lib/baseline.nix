# The baseline-to-assertions logic, as a PURE function (builtins only, no nixpkgs).
#
#   evaluate { baseline, exceptions, config, today } -> { results, violations, assertions, ... }
#
# - baseline:   the rendered baseline (baseline/rendered/*.nix, made by `msp-agent baseline
#               render`); only its `settings` are read here (see `normalizeSetting`).
# - exceptions: list of { rule, expires = "YYYY-MM-DD", reason, approved_by, ... }.
# - config:     a config-like attrset: a NixOS `config`, or a plain attrset in tests. Only the
#               option paths named by the baseline are read, and only lazily.
# - today:      "YYYY-MM-DD" (UTC). Pure evaluation has no clock, so the caller passes it in.
#
# An exception covers its rule through the whole of its `expires` day (UTC): it is valid when
# expires >= today and expired when expires < today. Expired, malformed or unknown-rule
# exceptions never excuse anything; each one is itself reported, so an expired exception
# fails the build instead of lingering as "waived" (the InSpec waiver bug, DESIGN.md 7).
#
# CI evaluates this file with `nix-instantiate --eval --strict --json` against expected JSON
# (checks/lib/), and modules/baseline.nix turns `assertions` into NixOS assertions.
let
  inherit (builtins)
    all
    any
    attrNames
    concatStringsSep
    elem
    filter
    foldl'
    hasAttr
    isAttrs
    isList
    isString
    length
    listToAttrs
    map
    toJSON
    typeOf
    ;

  date = import ./date.nix;

  # Walk `path` (list of attribute names) into `set`; `null` when any step is missing.
  # `config` is lazy, so reading one option path evaluates only that option.
  getPath =
    set: path:
    foldl' (acc: name: if acc != null && isAttrs acc && hasAttr name acc then acc.${name} else null) set path;

  showPath = concatStringsSep ".";
  show = v: if v == null then "unset" else toJSON v;
  showControls = cs: if cs == [ ] then "no HIPAA control listed" else "HIPAA ${concatStringsSep ", " cs}";

  exceptionProcess = "To keep this setting, file an exception: add { rule = \"RULE\"; reason = \"...\"; approved_by = \"...\"; expires = \"YYYY-MM-DD\"; } to this host's exceptions (msp.baseline.exceptions; the exception process is in baseline/README.md), or change the host configuration to comply.";

  # How a setting's expected value is compared with the host's actual value.
  comparators = {
    equals = expected: actual: actual == expected;
    at_least = expected: actual: actual != null && actual >= expected;
    at_most = expected: actual: actual != null && actual <= expected;
    # Lists (audit rules, kernel params): every expected element must be present.
    contains_all = expected: actual: isList actual && all (e: elem e actual) expected;
  };
  describeCheck = {
    equals = "=";
    at_least = ">=";
    at_most = "<=";
    contains_all = "to contain all of";
  };

  # One rendered setting, in the shape the rest of this file uses.
  normalizeSetting = id: s: {
    inherit id;
    option = s.option;
    check = s.check or "equals";
    expected = s.value;
    hipaa_controls = s.hipaa_controls or [ ];
    title = s.title or id;
  };

  settingsOf =
    baseline:
    let
      raw = baseline.settings or (throw "baseline.nix: the rendered baseline has no `settings`");
    in
    map (id: normalizeSetting id raw.${id}) (attrNames raw);

  # Problems with one exception record, as a list of strings (empty when well-formed).
  exceptionProblems =
    knownRules: e:
    let
      rule = e.rule or null;
    in
    (if isString rule then [ ] else [ "has no `rule`" ])
    ++ (if isString rule && !(elem rule knownRules) then [ "names rule ${rule}, which the baseline does not have" ] else [ ])
    ++ (if date.isDate (e.expires or null) then [ ] else [ "has no valid `expires` date (YYYY-MM-DD, UTC): ${show (e.expires or null)}" ])
    ++ (if isString (e.reason or null) && e.reason != "" then [ ] else [ "has no `reason`" ])
    ++ (if isString (e.approved_by or null) && e.approved_by != "" then [ ] else [ "has no `approved_by`" ]);

  evaluate =
    {
      baseline,
      exceptions ? [ ],
      config,
      today,
    }:
    let
      settings = settingsOf baseline;
      knownRules = map (s: s.id) settings;
      baselineName = baseline.id or baseline.name or "baseline";

      checkedToday =
        if date.isDate today then today else throw "baseline.nix: `today` must be a YYYY-MM-DD date, got ${show today}";

      exceptionErrors = foldl' (
        acc: e:
        let
          problems = exceptionProblems knownRules e;
        in
        acc
        ++ map (p: "msp-flake ${baselineName}: exception ${show (e.rule or null)} ${p}. Fix the exception record (baseline/README.md, 'Exceptions').") problems
      ) [ ] exceptions;

      wellFormed = filter (e: exceptionProblems knownRules e == [ ]) exceptions;
      validFor = rule: filter (e: e.rule == rule && e.expires >= checkedToday) wellFormed;
      expiredFor = rule: filter (e: e.rule == rule && e.expires < checkedToday) wellFormed;

      resultOf =
        s:
        let
          cmp = comparators.${s.check} or (throw "baseline.nix: rule ${s.id} has unknown check `${s.check}`");
          actual = getPath config s.option;
          compliant = cmp s.expected actual;
          valid = validFor s.id;
          expired = expiredFor s.id;
          status =
            if compliant then
              "compliant"
            else if valid != [ ] then
              "excepted"
            else if expired != [ ] then
              "exception-expired"
            else
              "violation";
          head = "msp-flake ${baselineName}: rule ${s.id} (${s.title}; ${showControls s.hipaa_controls}) requires ${showPath s.option} ${describeCheck.${s.check}} ${show s.expected}, but ${if actual == null then "this host leaves it unset" else "this host has ${show actual}"}.";
          expiredNote =
            if expired == [ ] then
              ""
            else
              " The exception for ${s.id} expired on ${(builtins.head expired).expires} (evaluation date ${checkedToday}, UTC) and no longer applies.";
          process = builtins.replaceStrings [ "RULE" ] [ s.id ] exceptionProcess;
        in
        {
          rule = s.id;
          option = showPath s.option;
          inherit (s) check expected hipaa_controls;
          inherit actual status;
          ok = status == "compliant" || status == "excepted";
          exception = if valid != [ ] then builtins.head valid else null;
          message = if status == "compliant" || status == "excepted" then null else "${head}${expiredNote} ${process}";
        };

      results = map resultOf settings;
      failing = filter (r: !r.ok) results;
      # An exception for a rule the host already complies with is harmless but worth a warning:
      # it is probably left over and should be removed before someone relies on it.
      unused = filter (e: any (r: r.rule == e.rule && r.status == "compliant") results) wellFormed;
    in
    {
      inherit results exceptionErrors;
      today = checkedToday;
      violations = map (r: r.message) failing ++ exceptionErrors;
      # NixOS-style assertions: one per enforced setting, plus one per malformed exception.
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
        map (
          r: "msp-flake ${baselineName}: rule ${r.rule} is not met (${r.option} = ${show r.actual}) under exception until ${r.exception.expires}: ${r.exception.reason}"
        ) (filter (r: r.status == "excepted") results)
        ++ map (e: "msp-flake ${baselineName}: exception for ${e.rule} is not needed (the host complies); remove it.") unused;
    };
  # The configuration the baseline implies, as a list of attrsets for mkMerge. Scalars are set
  # with `mkDefault` so a host may still set something else (the assertions above then decide,
  # with the rule's message, instead of a bare "conflicting definitions" error); lists are set
  # at normal priority so they merge with the host's own entries (audit rules, kernel params).
  definitions =
    { baseline, mkDefault }:
    map (
      s:
      let
        value = if isList s.expected then s.expected else mkDefault s.expected;
      in
      foldl' (acc: name: { ${name} = acc; }) value (builtins.genList (i: builtins.elemAt s.option (length s.option - 1 - i)) (length s.option))
    ) (settingsOf baseline);
in
{
  inherit evaluate definitions getPath settingsOf;
  inherit date;
}
