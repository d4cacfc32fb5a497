# The workspace's programs, built with rustPlatform.buildRustPackage: `msp-agent` (the
# default) or, with `program = "msp-fleet"`, the fleet view. Tests run inside the Nix sandbox
# (`doCheck`); the runbooks, baseline and schemas the tests read are shipped in the source.
#
#   pkgs.callPackage ./nix/package.nix { }                        # msp-agent
#   pkgs.callPackage ./nix/package.nix { program = "msp-fleet"; } # msp-fleet
{
  lib,
  rustPlatform,
  openssh,
  openssl,
  jq,
  nix,
  program ? "msp-agent",
}:
let
  # One crate per program (DESIGN.md 4b): the crate directory and its test targets that can
  # run in the build sandbox.
  programs = {
    msp-agent = {
      crate = ../agent/Cargo.toml;
      # The test targets that can run inside the Nix build sandbox. Left out, with the reason; they
      # run in the project's own CI (scripts/test), where the real parts exist:
      #   tests/journal.rs, tests/detect.rs, tests/daemon.rs: need `systemd-journal-remote` from
      #     Debian's systemd to make real journal files, and a journalctl that can follow them;
      #   tests/worm.rs, tests/ops.rs (and the daemon's WORM test): need a `moto_server` process
      #     (PyPI) as the S3 Object Lock endpoint;
      #   tests/journal_trust.rs: real journal files, as above; tests/checks.rs: chronyd and
      #     `openssl s_server` on loopback; tests/hostile_store.rs: root (chown to a second uid,
      #     a tmpfs for the full disk); tests/hostile_input.rs: poppler's pdftotext;
      #   tests/box.rs: root and the debootstrapped clinic box.
      # tests/fuzz.rs runs (the property-test fuzz targets at their CI budget).
      # tests/runbook.rs runs; its restic and systemd cases say SKIPPED loudly without restic or
      # root and a booted systemd, which the sandbox does not have. tests/packet.rs runs; without
      # poppler's pdftoppm/pdftotext it says SKIPPED for the PNG pages and the PDF text check;
      # so does tests/phi.rs for the PDF text of its packets.
      tests = [
        "keys"
        "evidence"
        "runbook"
        "baseline"
        "demo"
        "packet"
        "phi"
        "fuzz"
      ];
    };
    msp-fleet = {
      crate = ../fleet/Cargo.toml;
      # Only the library's unit tests in the sandbox: the fleet's integration tests (index, web,
      # browser, alert, status, packet) fill buckets with moto_server, drive chromium or run
      # the real agent, none of which the sandbox has; they run in scripts/test.
      tests = [ ];
    };
  };
  selected =
    programs.${program}
      or (throw "nix/package.nix: program must be one of ${lib.concatStringsSep ", " (lib.attrNames programs)}, not ${program}");
  cargoToml = lib.importTOML selected.crate;
  # Every crate takes its version from the workspace (`version.workspace = true`).
  workspaceToml = lib.importTOML ../Cargo.toml;
  fs = lib.fileset;
in
rustPlatform.buildRustPackage {
  # An unknown program fails here, with the list, rather than in cargo.
  pname = builtins.seq selected program;
  version =
    if builtins.isString (cargoToml.package.version or null) then
      cargoToml.package.version
    else
      workspaceToml.workspace.package.version;

  # Only what the build and the tests read: a change to hosts/, docs or Nix code does not
  # rebuild the agent.
  src = fs.toSource {
    root = ../.;
    fileset = fs.unions [
      ../Cargo.toml
      ../Cargo.lock
      # Every workspace member: cargo loads the whole workspace even to build one package.
      ../evidence
      ../agent
      ../fleet
      (fs.maybeMissing ../runbooks)
      (fs.maybeMissing ../baseline)
      (fs.maybeMissing ../schemas)
      # The clinic box script, embedded in the binary by `msp-agent demo` (include_str!).
      ../checks/box
    ];
  };

  cargoLock.lockFile = ../Cargo.lock;

  cargoBuildFlags = [
    "--package"
    program
  ];
  cargoTestFlags = [
    "--package"
    program
    "--lib"
  ]
  ++ lib.concatMap (t: [
    "--test"
    t
  ]) selected.tests;

  # The tests verify evidence with the stock tools an auditor uses (DESIGN.md 5); the baseline
  # tests evaluate the rendered Nix with nix-instantiate (`--store dummy://`, no daemon needed).
  nativeCheckInputs = [
    openssh
    openssl
    jq
    nix
  ];

  # nix-instantiate and ssh-keygen want a writable HOME; the sandbox's is /homeless-shelter.
  preCheck = ''
    export HOME=$(mktemp -d)
  '';


  meta = {
    description = cargoToml.package.description;
    license = lib.licenses.asl20;
    mainProgram = program;
    platforms = lib.platforms.linux;
  };
}
