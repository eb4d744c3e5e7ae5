//! `ticketlog load`: concurrent clients create tickets, and each ticket's id
//! is printed on its own line the moment its create is acknowledged (that is,
//! durable). Built for crash tests: kill the process at any point, reopen the
//! store, and every printed id must be there.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;
use std::thread;

use ticketlog::{ClientError, Durability, TicketDraft};

use super::args::LoadArgs;
use super::{CliError, open_store};

pub(crate) fn run(
    dir: &Path,
    durability: Durability,
    args: &LoadArgs,
) -> Result<ExitCode, CliError> {
    let store = open_store(dir, durability)?;
    let outcome: Result<(), CliError> = thread::scope(|scope| {
        let handles: Vec<_> = (0..args.clients)
            .map(|index| {
                let client = store.client();
                scope.spawn(move || -> Result<(), CliError> {
                    let stdout = io::stdout();
                    let mut sequence = 0u64;
                    while args.count == 0 || sequence < args.count {
                        let ticket = client.create(TicketDraft {
                            title: format!("load {index}-{sequence}")
                                .try_into()
                                .map_err(ClientError::Invalid)?,
                            description:
                                "Created by ticketlog load; its id is printed once durable."
                                    .try_into()
                                    .map_err(ClientError::Invalid)?,
                        })?;
                        // One write per line, flushed at the newline: the parent
                        // sees each id as soon as it is acknowledged.
                        writeln!(stdout.lock(), "{}", ticket.id)?;
                        sequence += 1;
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().try_for_each(|handle| {
            handle
                .join()
                .unwrap_or_else(|_| Err(CliError::Failed("a load client thread panicked".into())))
        })
    });
    let closed = store.close();
    outcome?;
    closed?;
    Ok(ExitCode::SUCCESS)
}
