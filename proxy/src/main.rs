//! The `authtap` binary: parse the command line, run, and turn an error into one plain message.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = authtap::cli::Cli::parse();
    authtap::init_logging();
    match authtap::main(cli) {
        Ok(code) => code,
        Err(e) => {
            // `{:#}` prints the whole chain ("cannot open X: permission denied") on one line.
            eprintln!("authtap: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
