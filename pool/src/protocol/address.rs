//! Where a spawned worker or fork server finds its pool: a fresh listening Unix
//! socket (in the abstract namespace on Linux) named in its ticket, and the token
//! that proves it is the process the pool started.

use std::io::{self, Read};
use std::os::unix::net::{UnixListener, UnixStream};

use crate::error::Error;

use super::Ticket;

/// 16 random bytes from the OS (falling back to hashed time and IDs).
fn random_token() -> [u8; 16] {
    let mut token = [0u8; 16];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut token))
        .is_ok()
    {
        return token;
    }
    use std::hash::{BuildHasher, Hasher};
    for half in token.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.write_u32(std::process::id());
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    token
}

/// A fresh non-blocking listener and the ticket naming it.
pub(crate) fn listen(spawn_id: u64) -> Result<(UnixListener, Ticket), Error> {
    let token = random_token();
    let nonce: String = token[..6].iter().map(|b| format!("{b:02x}")).collect();
    let name = format!("dilly-pool/{}/{spawn_id}/{nonce}", std::process::id());
    let listener = bind(&name).map_err(|source| Error::Io {
        context: "cannot listen for a new worker",
        source,
    })?;
    listener.set_nonblocking(true).map_err(|source| Error::Io {
        context: "cannot listen for a new worker",
        source,
    })?;
    Ok((
        listener,
        Ticket {
            address: address_bytes(&name),
            spawn_id,
            token,
        },
    ))
}

#[cfg(target_os = "linux")]
fn bind(name: &str) -> io::Result<UnixListener> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    UnixListener::bind_addr(&addr)
}

#[cfg(target_os = "linux")]
fn address_bytes(name: &str) -> Vec<u8> {
    name.as_bytes().to_vec()
}

#[cfg(not(target_os = "linux"))]
fn socket_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(name.replace('/', "-"))
}

#[cfg(not(target_os = "linux"))]
fn bind(name: &str) -> io::Result<UnixListener> {
    let path = socket_path(name);
    let _ = std::fs::remove_file(&path);
    UnixListener::bind(path)
}

#[cfg(not(target_os = "linux"))]
fn address_bytes(name: &str) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    socket_path(name).as_os_str().as_bytes().to_vec()
}

/// Connects to the parent's listener named by `ticket`.
pub(crate) fn connect(ticket: &Ticket) -> io::Result<UnixStream> {
    #[cfg(target_os = "linux")]
    {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(&ticket.address)?;
        UnixStream::connect_addr(&addr)
    }
    #[cfg(not(target_os = "linux"))]
    {
        use std::os::unix::ffi::OsStrExt;
        UnixStream::connect(std::ffi::OsStr::from_bytes(&ticket.address))
    }
}
