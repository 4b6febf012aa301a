//! Cross-process wake-ups: one connection per store LISTENs on [`CHANNEL`] and publishes each
//! `RUN:SEQ` notification to the waiters. If the connection drops it reconnects (with a
//! bounded back-off) and refreshes every watched run, so no append goes unnoticed.

use std::sync::Arc;
use std::time::Duration;

use botarmy_protocol::RunId;
use futures_util::StreamExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, Client, NoTls};

use super::CHANNEL;
use crate::StoreError;
use crate::projection::wire_int;
use crate::watch::Watchers;

/// The listening task; it stops when this is dropped (with the store).
pub(crate) struct Listener {
    _stop: oneshot::Sender<()>,
}

impl Listener {
    /// Connects and LISTENs; returns once notifications flow.
    pub(crate) async fn start(
        config: tokio_postgres::Config,
        watchers: Arc<Watchers>,
        location: String,
    ) -> Result<Self, StoreError> {
        let (client, driver) = listen(&config, &watchers)
            .await
            .map_err(|e| StoreError::Open {
                location,
                source: Box::new(e),
            })?;
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(supervise(config, watchers, client, driver, stopped));
        Ok(Self { _stop: stop })
    }
}

async fn listen(
    config: &tokio_postgres::Config,
    watchers: &Arc<Watchers>,
) -> Result<(Client, JoinHandle<()>), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let watchers = Arc::clone(watchers);
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message
                && n.channel() == CHANNEL
                && let Some((run, seq)) = parse(n.payload())
            {
                watchers.publish(run, seq);
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    Ok((client, driver))
}

fn parse(payload: &str) -> Option<(RunId, u64)> {
    let (run, seq) = payload.split_once(':')?;
    Some((run.parse().ok()?, seq.parse().ok()?))
}

async fn supervise(
    config: tokio_postgres::Config,
    watchers: Arc<Watchers>,
    client: Client,
    driver: JoinHandle<()>,
    mut stopped: oneshot::Receiver<()>,
) {
    // The client must live as long as its connection is used.
    let mut live: (Client, JoinHandle<()>) = (client, driver);
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            _ = &mut live.1 => {}
        }
        // The connection is gone: reconnect, then catch up on what may have been missed.
        let mut backoff = Duration::from_millis(100);
        loop {
            tokio::select! {
                _ = &mut stopped => return,
                () = tokio::time::sleep(backoff) => {}
            }
            if let Ok(fresh) = listen(&config, &watchers).await {
                live = fresh;
                break;
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        for run in watchers.watched() {
            if let Ok(Some(row)) = live
                .0
                .query_opt("SELECT last_seq FROM runs WHERE id = $1", &[&run.0])
                .await
            {
                watchers.publish(run, wire_int(row.get(0)));
            }
        }
    }
}
