# Calendar dates for the baseline's exception expiry, in pure Nix (builtins only).
#
# Why this exists: evaluation in a flake is pure and has no clock, so "today" has to be passed
# in as a "YYYY-MM-DD" string (see msp.baseline.evaluationDate). These helpers turn the two
# sources of a date that Nix can see (builtins.currentTime when impure, a flake's
# lastModifiedDate) into that form and validate dates written by people. Every date is UTC.
# Dates in "YYYY-MM-DD" form compare correctly as strings, so no date arithmetic is needed
# beyond these conversions.
let
  inherit (builtins) div match length elemAt toString fromJSON substring;

  pad2 = n: if n < 10 then "0${toString n}" else toString n;
  pad4 =
    n:
    let
      s = toString n;
    in
    substring 0 (4 - builtins.stringLength s) "0000" + s;

  # Integer of a decimal string with leading zeros ("08" is not valid JSON, so strip them).
  toInt =
    s:
    let
      m = match "0*([0-9]+)" s;
    in
    if m == null then throw "date.nix: not a decimal number: ${s}" else fromJSON (elemAt m 0);

  isLeap = y: (y - (div y 4) * 4 == 0 && y - (div y 100) * 100 != 0) || y - (div y 400) * 400 == 0;

  daysInMonth =
    y: m:
    if m == 2 then
      (if isLeap y then 29 else 28)
    else if m == 4 || m == 6 || m == 9 || m == 11 then
      30
    else
      31;
in
rec {
  # "YYYY-MM-DD" for a Unix time (seconds since 1970-01-01T00:00:00Z, >= 0), UTC.
  # Howard Hinnant's days-to-civil algorithm; all divisions are on non-negative numbers,
  # so Nix's truncating `div` is floor division here.
  epochToDate =
    t:
    let
      z = div t 86400 + 719468;
      era = div z 146097;
      doe = z - era * 146097;
      yoe = div (doe - div doe 1460 + div doe 36524 - div doe 146096) 365;
      doy = doe - (365 * yoe + div yoe 4 - div yoe 100);
      mp = div (5 * doy + 2) 153;
      d = doy - div (153 * mp + 2) 5 + 1;
      m = if mp < 10 then mp + 3 else mp - 9;
      y = yoe + era * 400 + (if m <= 2 then 1 else 0);
    in
    if t < 0 then throw "date.nix: negative Unix time ${toString t}" else "${pad4 y}-${pad2 m}-${pad2 d}";

  # "YYYY-MM-DD" for a flake's `lastModifiedDate` ("YYYYMMDDHHMMSS", UTC).
  lastModifiedToDate =
    s:
    let
      m = match "([0-9]{4})([0-9]{2})([0-9]{2})[0-9]{6}" s;
    in
    if m == null then
      throw "date.nix: not a flake lastModifiedDate (YYYYMMDDHHMMSS): ${s}"
    else
      "${elemAt m 0}-${elemAt m 1}-${elemAt m 2}";

  # True when `s` is a real calendar date written "YYYY-MM-DD" (rejects 2026-02-30, 2026-13-01).
  isDate =
    s:
    let
      m = if builtins.isString s then match "([0-9]{4})-([0-9]{2})-([0-9]{2})" s else null;
      y = toInt (elemAt m 0);
      mo = toInt (elemAt m 1);
      d = toInt (elemAt m 2);
    in
    m != null && length m == 3 && mo >= 1 && mo <= 12 && d >= 1 && d <= daysInMonth y mo;
}
