//! Postgres servers of the tests' own: a primary with a synchronous hot
//! standby, made with the installed Postgres binaries (`initdb`,
//! `pg_basebackup -R`, `pg_ctl`) on free ports, run as the `postgres` user
//! when the tests run as root; stopped and removed when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tenant_jwt::types::database_url::DatabaseUrl;
use tokio_postgres::NoTls;

/// One server: its data directory and port.
pub struct PgNode {
    pub port: u16,
    data: PathBuf,
}

/// Two servers, `nodes[0]` the primary at first, `nodes[1]` its standby.
pub struct PgPair {
    pub nodes: [PgNode; 2],
    root: tempfile::TempDir,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The newest installed Postgres's `bin` (Debian's layout), or `TEST_PG_BIN`.
fn bin(program: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("TEST_PG_BIN") {
        return Path::new(&dir).join(program);
    }
    let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("Postgres is installed under /usr/lib/postgresql")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort();
    let newest = versions.last().expect("a Postgres version is installed");
    PathBuf::from(format!("/usr/lib/postgresql/{newest}/bin/{program}"))
}

/// A Postgres program, run as `postgres` if we are root (the server refuses
/// to run as root).
fn command(program: &str, args: &[&str]) -> Command {
    let mut command = if unsafe { libc::geteuid() } == 0 {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(bin(program));
        command
    } else {
        Command::new(bin(program))
    };
    command.args(args);
    command
}

/// Runs a Postgres program and asserts it succeeds.
fn run(program: &str, args: &[&str]) {
    let output = command(program, args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl PgPair {
    /// A primary and a hot standby it waits for at every commit
    /// (`synchronous_standby_names = '*'`, `synchronous_commit = on`), both
    /// answering when this returns. Only the primary is told to wait (on its
    /// command line, which the standby's copy does not inherit), as Patroni
    /// does: the standby, once promoted, takes writes alone.
    pub async fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().to_str().unwrap().to_owned();
        if unsafe { libc::geteuid() } == 0 {
            let owned = Command::new("chown").args(["postgres:", &path]).status();
            assert!(owned.unwrap().success());
        }
        let node = |name: &str| PgNode {
            port: free_port(),
            data: root.path().join(name),
        };
        let pair = PgPair {
            nodes: [node("a"), node("b")],
            root,
        };
        let primary = &pair.nodes[0];
        let data = primary.data.to_str().unwrap();
        run(
            "initdb",
            &["-D", data, "-U", "postgres", "-A", "trust", "--no-sync"],
        );
        let config = format!(
            "listen_addresses = '127.0.0.1'\nunix_socket_directories = '{path}'\n\
             fsync = off\nshared_buffers = 16MB\nmax_connections = 100\n\
             wal_level = replica\nhot_standby = on\n"
        );
        std::fs::write(
            primary.data.join("postgresql.conf"),
            std::fs::read_to_string(primary.data.join("postgresql.conf")).unwrap() + &config,
        )
        .unwrap();
        pair.start_node(0, true);
        let standby = &pair.nodes[1];
        run(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &primary.port.to_string(),
                "-U",
                "postgres",
                "-D",
                standby.data.to_str().unwrap(),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ],
        );
        pair.start_node(1, false);
        pair.wait_for_sync_standby(0).await;
        pair
    }

    /// Starts node `i` (`-w`: answering when this returns); `waits` makes it
    /// wait for a synchronous standby at every commit.
    pub fn start_node(&self, i: usize, waits: bool) {
        let node = &self.nodes[i];
        let mut options = format!("-p {}", node.port);
        if waits {
            options.push_str(" -c synchronous_standby_names=*");
        }
        let log = self.root.path().join(format!("{i}.log"));
        run(
            "pg_ctl",
            &[
                "-D",
                node.data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
    }

    /// The URL naming both nodes, in order, for `database`.
    pub fn url(&self, database: &str) -> DatabaseUrl {
        let [a, b] = &self.nodes;
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/{database}",
            a.port, b.port
        )
        .parse()
        .unwrap()
    }

    /// A plain connection to node `i` (for the test's own looks).
    pub async fn connect(&self, i: usize) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname=postgres",
                self.nodes[i].port
            ),
            NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        client
    }

    /// SIGKILLs node `i`'s postmaster: a crash, with no shutdown of any kind.
    pub fn kill(&self, i: usize) {
        let pid_file = std::fs::read_to_string(self.nodes[i].data.join("postmaster.pid")).unwrap();
        let pid: i32 = pid_file.lines().next().unwrap().parse().unwrap();
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    }

    /// Stops node `i` cleanly (`-m fast`: a primary first sends its standby
    /// all it has).
    pub fn stop(&self, i: usize) {
        self.pg_ctl(i, &["-m", "fast", "-w", "stop"]);
    }

    /// Promotes standby `i`; returns when it takes writes.
    pub fn promote(&self, i: usize) {
        self.pg_ctl(i, &["-w", "promote"]);
    }

    /// Restarts the stopped node `i` as a standby of node `primary`.
    pub fn follow(&self, i: usize, primary: usize) {
        let data = &self.nodes[i].data;
        std::fs::write(data.join("standby.signal"), "").unwrap();
        let auto = data.join("postgresql.auto.conf");
        let conninfo = format!(
            "primary_conninfo = 'host=127.0.0.1 port={} user=postgres'\n",
            self.nodes[primary].port
        );
        std::fs::write(
            &auto,
            std::fs::read_to_string(&auto).unwrap_or_default() + &conninfo,
        )
        .unwrap();
        self.start_node(i, false);
    }

    /// Makes node `i` (a primary) wait for a synchronous standby at every
    /// commit from now on, and waits until one is streaming.
    pub async fn require_sync_standby(&self, i: usize) {
        let client = self.connect(i).await;
        client
            .batch_execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
            .await
            .unwrap();
        client
            .batch_execute("SELECT pg_reload_conf()")
            .await
            .unwrap();
        self.wait_for_sync_standby(i).await;
    }

    async fn wait_for_sync_standby(&self, i: usize) {
        let client = self.connect(i).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let row = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'",
                    &[],
                )
                .await
                .unwrap();
            if row.get::<_, i64>(0) > 0 {
                return;
            }
            assert!(Instant::now() < deadline, "no synchronous standby in 20 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn pg_ctl(&self, i: usize, args: &[&str]) {
        let data = self.nodes[i].data.to_str().unwrap();
        let mut all = vec!["-D", data];
        all.extend_from_slice(args);
        run("pg_ctl", &all);
    }
}

impl Drop for PgPair {
    fn drop(&mut self) {
        for node in &self.nodes {
            // Whatever state it is in; a stopped node just says so.
            let data = node.data.to_str().unwrap();
            let _ = command("pg_ctl", &["-D", data, "-m", "immediate", "-w", "stop"]).output();
        }
    }
}
