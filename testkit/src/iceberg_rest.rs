//! Apache Iceberg's REST catalog server (RESTCatalogServer from iceberg-open-api's test
//! fixtures, the server of the apache/iceberg-rest-fixture image), run by our launcher on
//! 127.0.0.1 only, from the jars of `scripts/tools iceberg-rest` (`$SLUICE_ICEBERG_REST_LIBS`,
//! which `scripts/test` sets): started on a free port, ready once `GET /v1/config` says 200,
//! killed on drop. Its catalog is a JdbcCatalog on sqlite (`<warehouse>/catalog.db`) and it
//! writes table metadata to local files under `file://<warehouse>`, so local-file readers and
//! writers see the same files. A missing server fails the test; it never skips.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::net::{free_port, http_get};

/// Longest the server may take to answer after it was spawned (a JVM on a busy machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The environment variable naming the folder of the server's jars.
pub const LIBS_ENV: &str = "SLUICE_ICEBERG_REST_LIBS";
/// Our launcher's main class (scripts/iceberg-rest/SluiceRESTCatalogServer.java).
const MAIN_CLASS: &str = "org.apache.iceberg.rest.SluiceRESTCatalogServer";
/// The server's output, in its warehouse.
const LOG_FILE: &str = "iceberg-rest.log";

/// A running Iceberg REST catalog server, killed on drop.
pub struct IcebergRest {
    child: Child,
    port: u16,
    warehouse: PathBuf,
}

impl IcebergRest {
    /// Starts the server with its warehouse (and catalog database) in `warehouse`, made if
    /// missing, and waits until it answers.
    pub fn start(warehouse: &Path) -> IcebergRest {
        let libs = libs_dir();
        std::fs::create_dir_all(warehouse)
            .unwrap_or_else(|e| panic!("creating {}: {e}", warehouse.display()));
        let warehouse = warehouse
            .canonicalize()
            .unwrap_or_else(|e| panic!("resolving {}: {e}", warehouse.display()));
        let log_path = warehouse.join(LOG_FILE);
        let log = std::fs::File::create(&log_path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", log_path.display()));
        let log_err = log.try_clone().expect("cloning the log file handle");
        let port = free_port();
        let mut command = Command::new("java");
        command
            .arg("-cp")
            .arg(format!("{}/*", libs.display()))
            .arg(MAIN_CLASS)
            .arg("--warehouse")
            .arg(&warehouse)
            .args(["--port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        // The server reads catalog properties from CATALOG_*: only the flags count.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("CATALOG_") {
                command.env_remove(key);
            }
        }
        let child = command.spawn().unwrap_or_else(|e| {
            panic!("starting java (the Iceberg REST server needs Java 17+): {e}")
        });
        let mut server = IcebergRest {
            child,
            port,
            warehouse,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let last = match http_get(("127.0.0.1", port), "/v1/config") {
                Ok((200, _)) => break,
                Ok((status, body)) => format!("HTTP {status}: {body}"),
                Err(e) => e.to_string(),
            };
            if let Some(status) = server.child.try_wait().expect("try_wait") {
                panic!(
                    "the Iceberg REST server exited with {status} before it answered\n{}",
                    log_tail(&log_path)
                );
            }
            assert!(
                Instant::now() < deadline,
                "the Iceberg REST server did not answer GET /v1/config within {START_TIMEOUT:?} \
                 (last: {last})\n{}",
                log_tail(&log_path)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`: the catalog URI for REST catalog clients.
    pub fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The warehouse folder (absolute); tables are under `file://<warehouse>/<namespace>/`.
    pub fn warehouse(&self) -> &Path {
        &self.warehouse
    }
}

impl Drop for IcebergRest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The jars' folder: `$SLUICE_ICEBERG_REST_LIBS`; a panic saying how to get it when it is
/// unset or holds no launcher.
pub fn libs_dir() -> PathBuf {
    let Some(dir) = std::env::var_os(LIBS_ENV) else {
        panic!(
            "{LIBS_ENV} is not set: point it at the jars of `scripts/tools iceberg-rest` \
             (scripts/test does: eval \"$(scripts/tools iceberg-rest)\"; \
             export {LIBS_ENV}=$ICEBERG_REST_LIBS)"
        );
    };
    let dir = PathBuf::from(dir);
    assert!(
        dir.join("sluice-iceberg-rest.jar").is_file(),
        "{LIBS_ENV}={} has no sluice-iceberg-rest.jar (`scripts/tools iceberg-rest` makes it)",
        dir.display()
    );
    dir
}

/// The last lines of the server's log, for a failure message.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(40)..].join("\n");
    format!("----- {} -----\n{tail}", path.display())
}
