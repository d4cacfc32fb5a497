//! The `msp-agent` binary: parse the command line, run the command, map the outcome onto the
//! documented exit codes (0 ok, 1 a check failed, 2 usage, configuration or I/O error).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = msp_agent::cli::Cli::parse();
    msp_agent::cli::init_logging(cli.verbose);
    match cli.command.run() {
        Ok(code) => code.into(),
        Err(err) => {
            // `{:#}` prints the whole context chain: "reading X: parsing line 3: ...".
            eprintln!("msp-agent: error: {err:#}");
            msp_agent::exit::Exit::Error.into()
        }
    }
}
