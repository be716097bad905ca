//! Starting and stopping a broker process: joining the cluster and taking over the
//! partitions assigned to it, the Kafka listener, the background tasks (fleet, group
//! timers, retention), and graceful shutdown — or exiting when fenced.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::session::ListenerInfo;
use super::{connection, fleet, http, Broker};
use crate::config::BrokerArgs;
use crate::coordination::groups::{offsets_topic, ConsumerGroupTiming, GroupCoordinator};
use crate::coordination::metadata::Endpoint;
use crate::lake::LakeService;
use crate::metrics::Metrics;
use crate::security::tls::TlsConfig;
use crate::storage::Store;

/// Exit status of a broker whose incarnation was fenced or declared dead: it must be
/// restarted (as a new incarnation) by its supervisor (EX_TEMPFAIL).
pub const EXIT_FENCED: i32 = 75;

/// Opens storage as a new incarnation, joins the cluster (registration, first
/// heartbeat, a controller round) and takes over the partitions assigned to it.
pub async fn start(
    args: BrokerArgs,
    advertised: Vec<(String, Endpoint)>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Arc<Broker>> {
    let store = Store::from_url(&args.storage, metrics.clone()).context("opening storage")?;
    start_with_store(args, advertised, metrics, store).await
}

/// [`start`] on an already opened store (the deterministic simulation gives each
/// simulated host its own view of one in-memory bucket).
pub async fn start_with_store(
    args: BrokerArgs,
    advertised: Vec<(String, Endpoint)>,
    metrics: Arc<Metrics>,
    store: Store,
) -> anyhow::Result<Arc<Broker>> {
    let broker = Broker::open(args, advertised, metrics, store).await?;
    broker
        .controller
        .register(
            &broker.advertised,
            Some(i32::from(broker.args.metrics_listen.port())),
        )
        .await
        .context("registering this broker")?;
    fleet::beat(&broker, 0).await.context("first heartbeat")?;
    broker
        .controller
        .tick()
        .await
        .context("first controller round")?;
    let (offsets_id, offsets_partitions) = offsets_topic::locate(
        &broker.metadata.current(),
        broker.args.offsets_topic_partitions,
    );
    let groups = GroupCoordinator::new(
        broker.engine.clone(),
        offsets_id,
        offsets_partitions,
        ConsumerGroupTiming {
            session_timeout: Duration::from_millis(broker.args.group_consumer_session_timeout_ms),
            heartbeat_interval: Duration::from_millis(
                broker.args.group_consumer_heartbeat_interval_ms,
            ),
        },
    );
    let _ = broker.groups.set(groups);
    fleet::reconcile(&broker)
        .await
        .context("taking over assigned partitions")?;
    broker.set_ready();
    Ok(broker)
}

/// Runs a broker until SIGTERM or SIGINT, then hands its partitions over and returns.
/// Exits the process with [`EXIT_FENCED`] if another broker fences this incarnation.
pub async fn run(args: BrokerArgs) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let specs = args.listener_specs()?;
    if let Some(spec) = specs.iter().find(|s| s.protocol.uses_tls()) {
        anyhow::ensure!(
            args.ssl_certificate_file.is_some(),
            "listener {} uses {}: give --ssl-certificate-file and --ssl-key-file",
            spec.name,
            spec.protocol
        );
    }
    let mut bound = Vec::new();
    for spec in specs {
        let socket = TcpListener::bind(spec.bind)
            .await
            .with_context(|| format!("binding listener {} on {}", spec.name, spec.bind))?;
        let addr = socket.local_addr()?;
        let endpoint = match &spec.advertised {
            Some((host, port)) => Endpoint {
                host: host.clone(),
                port: i32::from(*port),
            },
            // Clients connect to what Metadata says: an unspecified address would send
            // them to 0.0.0.0, which only works on this host.
            None if addr.ip().is_unspecified() => anyhow::bail!(
                "listener {} binds every interface ({addr}): give it an advertised address (--advertise or --advertised-listeners)",
                spec.name
            ),
            None => Endpoint {
                host: addr.ip().to_string(),
                port: i32::from(addr.port()),
            },
        };
        info!(listener = %spec.name, protocol = %spec.protocol, %addr, advertised = %format!("{}:{}", endpoint.host, endpoint.port), "listening");
        let info = Arc::new(ListenerInfo {
            name: spec.name,
            protocol: spec.protocol,
        });
        bound.push((info, socket, endpoint));
    }
    let advertised = bound
        .iter()
        .map(|(info, _, e)| (info.name.clone(), e.clone()))
        .collect();
    let (stop_tx, stop_rx) = watch::channel(false);
    let http_state = http::HttpState::default();
    let http = http::serve(
        args.metrics_listen,
        metrics.clone(),
        http_state.clone(),
        stop_rx.clone(),
    )
    .await
    .context("binding metrics listener")?;
    info!(storage = %args.storage, node = args.node_id, "starting sluice-broker");
    let broker = start(args, advertised, metrics).await?;
    http_state.set_broker(broker.clone());
    info!(
        incarnation = broker.engine.incarnation(),
        topics = broker.metadata.current().topics.len(),
        partitions = broker.engine.partitions().len(),
        controller = broker.controller.is_controller(),
        "ready"
    );

    let group_timers = broker.groups().start_timers(stop_rx.clone());
    let (fleet, fenced) = fleet::start(broker.clone(), stop_rx.clone());
    let lake = start_lake(&broker, stop_rx.clone())?;
    let retention = {
        let broker = broker.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let every = Duration::from_millis(broker.args.retention_check_interval_ms.max(10));
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => broker.topics.enforce_retention().await,
                    _ = stop.changed() => return,
                }
            }
        })
    };
    let mut acceptors: Vec<tokio::task::JoinHandle<()>> = bound
        .into_iter()
        .map(|(info, socket, _)| accept_loop(broker.clone(), info, socket, stop_rx.clone()))
        .collect();
    if let Some(tls) = broker.security.tls.clone() {
        acceptors.push(reload_tls(
            tls,
            broker.args.ssl_reload_interval_ms,
            stop_rx.clone(),
        ));
    }
    acceptors.push(fleet::follow_security(broker.clone(), stop_rx.clone()));

    tokio::select! {
        _ = wait_for_signal() => {}
        reason = fenced => {
            error!(reason = %reason.unwrap_or_default(), "this incarnation is fenced: exiting so it restarts as a new one");
            std::process::exit(EXIT_FENCED);
        }
    }
    info!("shutting down: handing partitions over");
    stop_tx.send_replace(true);
    for a in acceptors {
        let _ = a.await;
    }
    let _ = retention.await;
    let _ = group_timers.await;
    let _ = lake.await;
    for t in fleet {
        let _ = t.await;
    }
    let handed_over = fleet::hand_over_all(&broker).await;
    if let Err(e) = broker.engine.shutdown().await {
        error!(error = %e, "shutdown checkpoint failed; the WAL still holds every acknowledged record");
        return Err(e.into());
    }
    if let Err(e) = handed_over {
        error!(error = %e, "could not hand every partition over; they fail over instead");
    }
    let _ = http.await;
    info!("stopped cleanly");
    Ok(())
}

/// Accepts the connections of one listener until stopped.
fn accept_loop(
    broker: Arc<Broker>,
    listener: Arc<ListenerInfo>,
    socket: TcpListener,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = socket.accept() => match accepted {
                    Ok((conn, peer)) => {
                        let _ = conn.set_nodelay(true);
                        tokio::spawn(connection::serve(broker.clone(), conn, peer, listener.clone()));
                    }
                    Err(e) => warn!(listener = %listener.name, error = %e, "accept failed"),
                },
                _ = stop.changed() => return,
            }
        }
    })
}

/// Reads the TLS files again whenever they change, so renewed certificates are served
/// without a restart.
fn reload_tls(
    tls: Arc<TlsConfig>,
    every_ms: u64,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = Duration::from_millis(every_ms.max(100));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => match tls.reload_if_changed() {
                    Ok(true) => info!("TLS certificate reloaded"),
                    Ok(false) => {}
                    Err(e) => error!(error = %e, "TLS files changed but cannot be used; still serving the previous certificate"),
                },
                _ = stop.changed() => return,
            }
        }
    })
}

/// The lake writer (`crate::lake`), with the catalog `--lake-catalog` names.
fn start_lake(
    broker: &Arc<Broker>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    match broker.lake_catalog.config() {
        Some(c) => info!(catalog = ?c.kind, warehouse = %c.warehouse, "lake writer on"),
        None => info!("lake writer off: no Iceberg catalog (--lake-catalog)"),
    }
    let service = Arc::new(LakeService {
        catalog: broker.lake_catalog.clone(),
        engine: broker.engine.clone(),
        metadata: broker.metadata.clone(),
        metrics: broker.metrics.clone(),
        schemas: broker.schemas.clone(),
        status: broker.lake_status.clone(),
        writer_id: format!("{}/{}", broker.args.node_id, broker.engine.incarnation()),
        #[cfg(debug_assertions)]
        crash_at: broker.args.inject_lake_crash,
        #[cfg(not(debug_assertions))]
        crash_at: None,
    });
    Ok(service.start(stop))
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
