# journald.conf [Journal] settings across nixpkgs releases (pure, builtins only): 26.05 has
# services.journald.extraConfig (lines); its replacement, services.journald.settings.Journal,
# comes with the release that removes extraConfig (nixpkgs 26.11 release notes). Reading a
# removed option throws, so callers ask `hasSettings options` first.
let
  show = v: if v == true then "yes" else if v == false then "no" else toString v;
in
{
  # Whether this nixpkgs declares services.journald.settings (the replacement).
  hasSettings = options: options ? services && options.services ? journald && options.services.journald ? settings;

  # Settings as journald.conf lines, for extraConfig.
  toLines = settings: builtins.concatStringsSep "" (map (k: "${k}=${show settings.${k}}\n") (builtins.attrNames settings));

  # "Key=value" lines of the host's [Journal] configuration, from whichever option exists.
  lines =
    { options, config }:
    if options ? services && options.services ? journald && options.services.journald ? settings then
      let
        j = config.services.journald.settings.Journal or { };
      in
      map (k: "${k}=${show j.${k}}") (builtins.attrNames j)
    else
      builtins.filter (l: l != "") (
        map (l: builtins.head (builtins.match "[[:space:]]*(.*[^[:space:]]|)[[:space:]]*" l)) (
          builtins.filter builtins.isString (builtins.split "\n" config.services.journald.extraConfig)
        )
      );
}
