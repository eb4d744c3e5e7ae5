//! The `ticketlog` command-line tool; see `ticketlog --help`.

#![forbid(unsafe_code)]

mod cli;
#[cfg(feature = "serve")]
mod serve;

fn main() -> std::process::ExitCode {
    #[cfg(feature = "serve")]
    return cli::main(cli::Services {
        serve: serve::run,
        background: serve::background,
    });
    #[cfg(not(feature = "serve"))]
    cli::main()
}
