//! The `ticketlog` command-line tool; see `ticketlog --help`.

#![forbid(unsafe_code)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
