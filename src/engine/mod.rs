//! The engine: the server thread that owns the state and the log (group
//! commit, rollback, snapshot scheduling, retention), what opening does
//! (snapshot plus replay), and the reads it hands to other threads
//! (history).

pub mod history;
pub mod reply;
pub mod request;
pub mod restore;
pub mod retention;
pub mod server;
pub mod subscription;
