//! The `msp-fleet` binary: parses the command line and maps results onto exit codes.

use std::process::ExitCode;

fn main() -> ExitCode {
    msp_fleet::cli::main()
}
