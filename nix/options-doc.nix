# The options reference (docs/options.md), generated from the modules' own option
# declarations. Needs only nixpkgs' `lib`: the NixOS options the modules *set* come from the
# stand-in declarations in ./stubs.nix, and only msp-flake's own options are listed.
#
#   nix-instantiate --eval --raw is not in Nix 2.8, so scripts/gen-options-doc prints it with
#   --json and jq -r; the flake's packages.<system>.options-doc writes the same text.
{ lib }:
let
  stubs = import ./stubs.nix { inherit lib; };
  eval = lib.evalModules {
    modules = [
      stubs.module
      ../modules
      { _module.args.pkgs = stubs.pkgs; }
    ];
  };

  root = toString ../.;
  relative = p: lib.removePrefix "${root}/" (toString p);

  ours =
    o:
    lib.hasPrefix "services.msp-agent." o.name
    || lib.hasPrefix "services.msp-fleet." o.name
    || lib.hasPrefix "msp." o.name;
  options = builtins.filter (o: ours o && o.visible && !o.internal) (lib.optionAttrSetToDocList eval.options);

  render =
    v:
    if v ? _type && v._type == "literalExpression" then
      v.text
    else if v ? _type && v._type == "literalMD" then
      v.text
    else
      builtins.toJSON v;

  block = label: text: ''
    *${label}:*
    ```nix
    ${text}
    ```
  '';

  one = o: ''
    ## `${o.name}`

    ${o.description or ""}

    *Type:* ${o.type}${lib.optionalString (o.readOnly or false) " (read-only)"}

    ${lib.optionalString (o ? default) (block "Default" (render o.default))}
    ${lib.optionalString (o ? example) (block "Example" (render o.example))}
    *Declared in:* ${lib.concatMapStringsSep ", " (d: "`${relative d}`") o.declarations}

  '';
in
''
  # msp-flake NixOS options

  Generated from the modules' option declarations by `scripts/gen-options-doc`
  (or `nix build .#options-doc`); do not edit by hand. ${toString (builtins.length options)} options.

''
+ lib.concatMapStrings one options
