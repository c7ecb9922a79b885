//! What moat's two HTTP servers, the function watchdog and the Kubernetes admission webhook,
//! share to keep answering when clients are hostile or descriptors run out.
//!
//! - [`nofile`]: the descriptor limit, raised to its hard limit at start, and the default
//!   connection cap derived from it.
//! - [`Connections`]: every open connection, whether it is serving a request or idle, and
//!   the *shedding* of idle connections (longest idle first) when the cap is reached or
//!   descriptors run out, with one log line when such an episode starts and one when it is
//!   over, never one per failure.
//! - [`Acceptor`]: an accept loop that never spins and never stops serving: at the cap or
//!   out of descriptors it sheds idle connections; when none is idle it answers the new
//!   client at once with a refusal (a 503 for plain HTTP), using a descriptor kept in
//!   reserve for exactly that.
//! - [`Tracked`]: a response body that keeps its connection counted as busy until the last
//!   byte is written, so a streaming response is never shed.
//!
//! For the tests and benchmarks of both servers: [`process`] reads a server's memory and
//! descriptors from `/proc`, [`siege::Siege`] holds idle connections against it, and
//! [`nofile::limit_child`] starts it under a given descriptor limit.

#![deny(missing_docs)]

mod accept;
mod connections;
pub mod nofile;
pub mod process;
pub mod siege;
mod tracked;

pub use accept::Acceptor;
pub use connections::{Conn, Connections, Request, Settings};
pub use tracked::Tracked;
