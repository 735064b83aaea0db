//! A tokio program that offloads work to a process pool: a TCP line server whose
//! handler awaits a computation in a worker process, so that the runtime's one
//! thread stays free to serve other connections meanwhile.
//!
//! It serves one request that it makes itself, then exits:
//!
//! ```text
//! $ cargo run -p dilly-pool --example async_server
//! listening on 127.0.0.1:41235
//! sent: fib 30
//! fib(30) = 832040, computed in another process
//! ```

use std::sync::Arc;

use dilly_pool::{Executor, ProcessPool};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// The `n`th Fibonacci number, the slow way (the CPU-bound work), and the id of
/// the process that computed it.
#[dilly::func]
fn fib(n: u64) -> (u64, u32) {
    fn slow(n: u64) -> u64 {
        if n < 2 { n } else { slow(n - 1) + slow(n - 2) }
    }
    (slow(n), std::process::id())
}

/// Answers each line `fib N` on one connection with `VALUE PID`, awaiting the
/// pool; other tasks of the runtime run while the worker computes.
async fn handle(stream: TcpStream, pool: Arc<ProcessPool>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        let reply = match line.strip_prefix("fib ").map(str::parse::<u64>) {
            Some(Ok(n)) if n <= 40 => match pool.apply_async(&dilly::func_of!(fib), (n,)) {
                Ok(pending) => match pending.await {
                    Ok((value, pid)) => format!("{value} {pid}"),
                    Err(error) => format!("error: {error}"),
                },
                Err(error) => format!("error: {error}"),
            },
            _ => "error: expected `fib N` with N at most 40".to_string(),
        };
        write.write_all(format!("{reply}\n").as_bytes()).await?;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = Arc::new(ProcessPool::builder().workers(2).build()?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        println!("listening on {address}");
        let server_pool = Arc::clone(&pool);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(handle(stream, Arc::clone(&server_pool)));
            }
        });

        // The one request, made by this program itself.
        let (read, mut write) = TcpStream::connect(address).await?.into_split();
        write.write_all(b"fib 30\n").await?;
        println!("sent: fib 30");
        let reply = BufReader::new(read)
            .lines()
            .next_line()
            .await?
            .ok_or("the server closed the connection")?;
        let (value, pid) = reply
            .split_once(' ')
            .ok_or_else(|| format!("unexpected reply {reply:?}"))?;
        let pid: u32 = pid.parse()?;
        assert_ne!(pid, std::process::id(), "the work ran in a worker process");
        println!("fib(30) = {value}, computed in another process");
        Ok(())
    })
}
