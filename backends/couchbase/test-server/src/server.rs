//! The listener: one task per connection, requests answered in order.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::BufWriter;
use tokio::net::{TcpListener, TcpStream};

use crate::data::Data;
use crate::frame::{read_request, write_response};
use crate::session::{Session, Shared};
use crate::settings::Settings;

pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl Server {
    /// Listens on `addr` (port 0 for any free one).
    pub async fn bind(addr: SocketAddr, settings: Settings) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let shared = Arc::new(Shared {
            settings,
            data: Data::default(),
            host: local.ip().to_string(),
            port: local.port(),
        });
        Ok(Self { listener, shared })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until the task is dropped.
    pub async fn run(self) -> io::Result<()> {
        loop {
            let (stream, peer) = self.listener.accept().await?;
            let shared = self.shared.clone();
            tokio::spawn(async move {
                if let Err(e) = serve(stream, shared).await {
                    eprintln!("couchbase test server: connection from {peer} closed: {e}");
                }
            });
        }
    }
}

async fn serve(stream: TcpStream, shared: Arc<Shared>) -> Result<(), Box<dyn std::error::Error>> {
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    let mut read = tokio::io::BufReader::new(read);
    let mut write = BufWriter::new(write);
    let mut session = Session::new(shared);
    while let Some(request) = read_request(&mut read).await? {
        let response = session.answer(&request);
        write_response(&mut write, &response).await?;
        // Answer at once unless more requests are already buffered.
        if read.buffer().is_empty() {
            tokio::io::AsyncWriteExt::flush(&mut write).await?;
        }
    }
    tokio::io::AsyncWriteExt::flush(&mut write).await?;
    Ok(())
}
