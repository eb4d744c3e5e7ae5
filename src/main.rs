//! The `ticketlog` command-line tool; see `ticketlog --help`.

#![forbid(unsafe_code)]

mod cli;
#[cfg(feature = "serve")]
mod serve;

fn main() -> std::process::ExitCode {
    cli::main()
}
