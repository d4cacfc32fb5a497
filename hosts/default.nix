# The example clinic hosts: name -> NixOS modules. flake.nix turns each into
# nixosConfigurations.<name>; scripts/eval-modules evaluates the same list against stubs.
# To add a clinic server, copy a directory and add a line here.
{
  clinic-001-srv-primary = [ ./clinic-001-srv-primary ];
  clinic-002-srv-01 = [ ./clinic-002-srv-01 ];
}
