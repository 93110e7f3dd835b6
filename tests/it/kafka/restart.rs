//! A broker restarted in the middle of the stream: nothing lost, nothing duplicated.

use super::*;
use crate::support::service;
use parkflow_ingest::IngestMetrics;
use std::time::Duration as Wait;

/// A broker of the test's own, on file-backed storage, that can be stopped and started again
/// on the same port.
struct Broker {
    bin: String,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<std::process::Child>,
}

impl Broker {
    fn start(bin: String) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut b = Self {
            bin,
            dir: tempfile::tempdir().unwrap(),
            port,
            child: None,
        };
        b.restart();
        b
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        let url = format!("tcp://{}", self.address());
        let child = std::process::Command::new(&self.bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            // A path relative to the working directory: the broker's own data file.
            .args(["--storage-engine", "sqlite://broker.db"])
            .current_dir(self.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the broker starts");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(self.address()).is_ok() {
                return;
            }
            std::thread::sleep(Wait::from_millis(100));
        }
        panic!("the broker did not listen on {}", self.address());
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().ok();
            c.wait().ok();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_stream_loses_and_duplicates_nothing() {
    let Some(bin) = service("PARKFLOW_TEST_KAFKA_BIN") else {
        return;
    };
    let mut broker = Broker::start(bin);
    let Some(mut w) = world_on(broker.address()).await else {
        return;
    };
    w.kafka.batch_size = 50;
    let n = w.outbox_len().await;
    let pool = w.state.services.store().writer().clone();
    let half = (n / 2) as i64;
    // The first half is relayed and consumed before the restart.
    sqlx::query("DELETE FROM outbox_unpublished WHERE id > $1")
        .bind(half)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(w.relay().drain().await.unwrap(), half as usize);
    let mut consumer = w.consumer(IngestMetrics::default());
    consumer.step(Wait::from_secs(10)).await.unwrap();
    drop(consumer);
    sqlx::query("INSERT INTO outbox_unpublished (id) SELECT id FROM outbox WHERE id > $1")
        .bind(half)
        .execute(&pool)
        .await
        .unwrap();

    // The broker goes down while the relay sends the second half; it comes back two seconds
    // later on the same port and storage. The relay keeps retrying (a relay whose producer gave
    // up is replaced, as a supervisor would restart it).
    broker.stop();
    let relay = w.relay();
    let sending = tokio::spawn(async move { relay.drain().await });
    tokio::time::sleep(Wait::from_secs(2)).await;
    broker.restart();
    let _ = sending.await.unwrap();
    for _ in 0..5 {
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox_unpublished")
            .fetch_one(&pool)
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        let _ = w.relay().drain().await;
    }
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox_unpublished")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "every outbox row was published after the restart");

    let mut consumer = w.consumer(IngestMetrics::default());
    consumer.drain(Wait::from_secs(5)).await.unwrap();
    w.assert_exactly(n).await;
}
