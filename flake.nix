{
  description = "msp-flake: HIPAA compliance agent and NixOS modules for MSP-run clinic servers";

  # nixos-26.05; flake.lock pins the exact revision (shared/nixpkgs-pin.json).
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f system nixpkgs.legacyPackages.${system});

      mspLib = import ./nix/lib.nix;

      # The hosts in ./hosts, each with this flake's modules and an evaluation date for the
      # baseline's exception expiry (this flake's last commit date; see README.md, "Exceptions and dates").
      mkHost =
        name: modules:
        lib.nixosSystem {
          modules = [
            self.nixosModules.default
            { msp.baseline.evaluationDate = lib.mkDefault (mspLib.dateOf self); }
          ]
          ++ modules;
        };
    in
    {
      lib = mspLib;

      overlays.default = final: _prev: {
        msp-agent = final.callPackage ./nix/package.nix { };
        msp-fleet = final.callPackage ./nix/package.nix { program = "msp-fleet"; };
      };

      packages = forAllSystems (
        system: pkgs: {
          msp-agent = pkgs.callPackage ./nix/package.nix { };
          # The fleet view (fleet/): same workspace, its own binary.
          msp-fleet = pkgs.callPackage ./nix/package.nix { program = "msp-fleet"; };
          default = self.packages.${system}.msp-agent;
          # The options reference (docs/options.md), generated from the modules' declarations.
          options-doc = pkgs.writeText "msp-flake-options.md" (import ./nix/options-doc.nix { inherit lib; });
        }
      );

      nixosModules = {
        default = ./modules;
        agent = ./modules/agent.nix;
        baseline = ./modules/baseline.nix;
        luks-tang = ./modules/luks-tang.nix;
        ssh-ca = ./modules/ssh-ca.nix;
        auditd = ./modules/auditd.nix;
        hardening = ./modules/hardening.nix;
        fleet = ./modules/fleet.nix;
      };

      nixosConfigurations = lib.mapAttrs mkHost (import ./hosts);

      checks = forAllSystems (
        system: pkgs:
        import ./checks {
          inherit
            self
            pkgs
            lib
            system
            mkHost
            ;
        }
      );

      devShells = forAllSystems (
        system: pkgs: {
          default = pkgs.mkShell {
            inputsFrom = [ self.packages.${system}.msp-agent ];
            packages = [
              pkgs.rust-analyzer
              pkgs.clippy
              pkgs.rustfmt
              pkgs.openssh
              pkgs.openssl
              pkgs.jq
              pkgs.nixfmt
            ];
          };
        }
      );

      formatter = forAllSystems (_system: pkgs: pkgs.nixfmt-tree);
    };
}
