//! A Redis server restarted while producing and consuming: the producer
//! retries, the consumer reconnects, nothing is lost.
//!
//! The test starts its own `redis-server` (append-only file, fsync always)
//! on a free port, so the machine's server is not disturbed.

mod support;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_backbone_core::{
    Consumer, ConsumerContext, HandlerError, Producer, RetryPolicy, StreamChannel,
};
use event_backbone_redis::{Redis, RedisBuilderExt, RedisConfig, RedisStreamChannel};

struct Server {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<tokio::process::Child>,
}

impl Server {
    async fn start(port: u16, dir: std::path::PathBuf) -> Self {
        let mut server = Server {
            port,
            dir,
            child: None,
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed (scripts/start-redis installs it)");
        self.child = Some(child);
        let address = format!("127.0.0.1:{}", self.port);
        support::eventually("the test server to listen", || async {
            tokio::net::TcpStream::connect(&address).await.is_ok()
        })
        .await;
    }

    async fn restart(&mut self, down_for: Duration) {
        let mut child = self.child.take().unwrap();
        // SIGTERM: Redis flushes the append-only file and exits.
        let pid = child.id().unwrap().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        child.wait().await.unwrap();
        tokio::time::sleep(down_for).await;
        self.spawn().await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_across_a_server_restart() {
    let port = free_port();
    let dir = std::env::temp_dir().join(support::unique("restart"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut server = Server::start(port, dir.clone()).await;

    let config = RedisConfig::from_url(&format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .response_timeout(Duration::from_secs(2));
    let redis = Redis::connect(config).await.unwrap();
    let retry = RetryPolicy::exponential(20)
        .initial_delay(Duration::from_millis(50))
        .max_delay(Duration::from_millis(500));

    let handled = Arc::new(Mutex::new(BTreeSet::new()));
    let h = handled.clone();
    let consumer = Consumer::builder()
        .redis(&redis)
        .uri("orders")
        .group("g")
        .consumer_name("steady")
        .block(Duration::from_millis(100))
        // A read whose reply the dying server never sent leaves entries
        // pending under this name: the consumer takes them back itself once
        // reads work again, without waiting for a stale-entry claim.
        .no_claim()
        .backend_retry(retry.clone())
        .subscribe_fn(move |ctx: ConsumerContext| {
            let h = h.clone();
            async move {
                h.lock().unwrap().insert(ctx.segment::<u32>("i")?);
                Ok::<(), HandlerError>(())
            }
        })
        .unwrap();

    let producer = Producer::builder()
        .redis(&redis)
        .uri("orders")
        .backend_retry(retry)
        .build()
        .unwrap();
    let sender = tokio::spawn(async move {
        for i in 0..400u32 {
            producer.message("placed").segment("i", &i)?.send().await?;
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        Ok::<_, event_backbone_core::Error>(())
    });

    support::eventually("100 messages handled before the restart", || async {
        handled.lock().unwrap().len() >= 100
    })
    .await;
    assert!(
        !sender.is_finished(),
        "the producer finished before the restart"
    );
    server.restart(Duration::from_millis(500)).await;
    sender
        .await
        .unwrap()
        .expect("the producer rode out the restart");

    let channel = RedisStreamChannel::new(&redis);
    // The wait is the check: every message handled (none lost across the
    // restart) and nothing left pending.
    support::eventually("all 400 handled (none lost) and none pending", || async {
        let all = handled.lock().unwrap().len() == 400;
        let pending = match channel.info("orders").await {
            Ok(info) => info.group("g").map(|g| g.pending),
            Err(_) => None,
        };
        all && pending == Some(0)
    })
    .await;
    consumer.shutdown().await.unwrap();
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
