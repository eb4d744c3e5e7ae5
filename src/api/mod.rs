//! The public face of the library: [`Store`](store::Store), the
//! [`Client`](client::Client) handle, and the offline inspection tools
//! ([`inspect`]).

pub mod client;
pub mod inspect;
pub mod store;
pub mod subscription;
