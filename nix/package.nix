# The msp-agent package: the Rust workspace built with rustPlatform.buildRustPackage, its
# tests run inside the Nix sandbox (`doCheck`), and the runbooks, baseline and schemas the
# tests read shipped in the source.
{
  lib,
  rustPlatform,
  openssh,
  openssl,
  jq,
  nix,
}:
let
  cargoToml = lib.importTOML ../agent/Cargo.toml;
  fs = lib.fileset;
in
rustPlatform.buildRustPackage {
  pname = "msp-agent";
  inherit (cargoToml.package) version;

  # Only what the build and the tests read: a change to hosts/, docs or Nix code does not
  # rebuild the agent.
  src = fs.toSource {
    root = ../.;
    fileset = fs.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../agent
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
    "msp-agent"
  ];
  # The test targets that can run inside the Nix build sandbox. Left out, with the reason; they
  # run in the project's own CI (scripts/test), where the real parts exist:
  #   tests/journal.rs, tests/detect.rs, tests/daemon.rs: need `systemd-journal-remote` from
  #     Debian's systemd to make real journal files, and a journalctl that can follow them;
  #   tests/worm.rs (and the daemon's WORM test): need a `moto_server` process (PyPI) as the
  #     S3 Object Lock endpoint.
  # tests/runbook.rs runs; its restic and systemd cases say SKIPPED loudly without restic or
  # root and a booted systemd, which the sandbox does not have. tests/packet.rs runs; without
  # poppler's pdftoppm/pdftotext it says SKIPPED for the PNG pages and the PDF text check;
  # so does tests/phi.rs for the PDF text of its packets.
  cargoTestFlags = [
    "--package"
    "msp-agent"
    "--lib"
    "--test"
    "keys"
    "--test"
    "evidence"
    "--test"
    "runbook"
    "--test"
    "baseline"
    "--test"
    "demo"
    "--test"
    "packet"
    "--test"
    "phi"
  ];

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
    mainProgram = "msp-agent";
    platforms = lib.platforms.linux;
  };
}
