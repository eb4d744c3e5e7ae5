//! The domain: tickets, the commands that change them, the changes the log
//! records, the events history and subscriptions report, and the codec that
//! turns changes into record payloads. No I/O, no clock, no threads.

pub mod change;
pub mod codec;
pub mod command;
pub mod event;
pub mod rejection;
pub mod ticket;
pub mod time;
pub mod validation;
