//! A private Redis Cluster: N masters (+ replicas) on free ports in a temporary directory, made
//! with `redis-cli --cluster create`, stopped by PID and removed on drop. Never the shared Redis.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{available, redis_answers};

/// How long a node may miss pings before it counts as failed: short, so the cluster's own
/// failure handling fits a test, long enough for a loaded 2-core machine.
const NODE_TIMEOUT_MS: u32 = 2000;

/// A running cluster. Dropping it kills every node and deletes its directory.
pub struct PrivateCluster {
    nodes: Vec<Node>,
    dir: PathBuf,
}

struct Node {
    port: u16,
    child: Child,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl PrivateCluster {
    /// `masters` masters with `replicas` replicas each, all slots covered and `cluster_state:ok`
    /// on every node; `None` (skip, or fail under COURIER_REQUIRE_REDIS=1) without the binaries.
    pub async fn start(masters: usize, replicas: usize) -> Option<Self> {
        let started = Self::spawn(masters, replicas).await;
        let detail = started.as_ref().err().cloned().unwrap_or_default();
        let ok = available(
            "redis-server and redis-cli (cluster)",
            started.is_ok(),
            &detail,
        );
        ok.then(|| started.ok()).flatten()
    }

    async fn spawn(masters: usize, replicas: usize) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!(
            "courier-cluster-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("temp dir: {e}"))?;
        let mut cluster = Self {
            nodes: Vec::new(),
            dir,
        };
        for _ in 0..masters * (1 + replicas) {
            let (port, bus) = (free_port(), free_port());
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus.to_string(),
                ])
                .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
                .arg("--cluster-config-file")
                .arg(cluster.dir.join(format!("nodes-{port}.conf")))
                .arg("--dir")
                .arg(&cluster.dir)
                .args(["--save", "", "--appendonly", "no"])
                // Replicas sync at once (the default waits 5 s for more replicas to share a transfer).
                .args(["--repl-diskless-sync-delay", "0"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("redis-server: {e}"))?;
            cluster.nodes.push(Node { port, child });
        }
        for node in &cluster.nodes {
            if !answers_within(&format!("redis://127.0.0.1:{}", node.port)).await {
                return Err(format!("cluster node {} did not answer", node.port));
            }
        }
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(
                cluster
                    .nodes
                    .iter()
                    .map(|n| format!("127.0.0.1:{}", n.port)),
            )
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("redis-cli: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "redis-cli --cluster create: {}",
                String::from_utf8_lossy(&out.stdout)
            ));
        }
        cluster.until_settled(masters).await?;
        Ok(cluster)
    }

    /// Waits until every node says `cluster_state:ok` and knows `masters` masters, and every
    /// replica's link to its master is up (so a manual failover can start).
    async fn until_settled(&self, masters: usize) -> Result<(), String> {
        for _ in 0..200 {
            let mut settled = true;
            for node in &self.nodes {
                let info = self.cmd(node.port, &["CLUSTER", "INFO"]).await;
                let nodes = self.cmd(node.port, &["CLUSTER", "NODES"]).await;
                let role = self.cmd(node.port, &["INFO", "replication"]).await;
                let known_masters = nodes
                    .lines()
                    .filter(|l| l.contains("master") && !l.contains("fail"))
                    .count();
                settled &= info.contains("cluster_state:ok")
                    && known_masters == masters
                    && (role.contains("role:master") || role.contains("master_link_status:up"));
            }
            if settled {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err("the cluster did not settle".into())
    }

    /// Every node's URL (seed nodes for the layer).
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    /// One command on one node (no cluster routing), its reply as text ("" on error).
    pub async fn cmd(&self, port: u16, args: &[&str]) -> String {
        self.query(port, args)
            .await
            .map(|v| text(&v))
            .unwrap_or_default()
    }

    /// One command on one node, its reply (`None` on error or after 2 s).
    pub async fn query(&self, port: u16, args: &[&str]) -> Option<redis::Value> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
        let reply = async {
            let mut conn = client.get_multiplexed_async_connection().await.ok()?;
            let mut cmd = redis::cmd(args[0]);
            for a in &args[1..] {
                cmd.arg(*a);
            }
            cmd.query_async::<redis::Value>(&mut conn).await.ok()
        };
        tokio::time::timeout(Duration::from_secs(2), reply)
            .await
            .ok()
            .flatten()
    }

    /// The port of the master serving `slot`, and of one of its replicas (if any).
    pub async fn shard_of(&self, slot: u16) -> (u16, Option<u16>) {
        let port = self.nodes[0].port;
        // (Asked of the first node: tests kill nodes only after their last `shard_of`.)
        let nodes = self.cmd(port, &["CLUSTER", "NODES"]).await;
        let lines: Vec<Vec<&str>> = nodes.lines().map(|l| l.split(' ').collect()).collect();
        let serves = |fields: &[&str]| {
            fields.iter().skip(8).any(|range| {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                matches!((lo.parse::<u16>(), hi.parse::<u16>()), (Ok(lo), Ok(hi)) if lo <= slot && slot <= hi)
            })
        };
        let master = lines
            .iter()
            .find(|f| f.len() > 8 && f[2].contains("master") && serves(f))
            .expect("a master serves every slot");
        let replica = lines
            .iter()
            .find(|f| f.len() > 3 && f[2].contains("slave") && f[3] == master[0]);
        (addr_port(master[1]), replica.map(|r| addr_port(r[1])))
    }

    /// Kills the node on `port` (SIGKILL, by PID): its sockets drop at once, as in a crash.
    pub fn kill(&mut self, port: u16) {
        if let Some(node) = self.nodes.iter_mut().find(|n| n.port == port) {
            let _ = node.child.kill();
            let _ = node.child.wait();
        }
    }

    /// Waits (bounded) until the node on `port` says it is a master.
    pub async fn until_master(&self, port: u16) -> bool {
        for _ in 0..300 {
            if self
                .cmd(port, &["INFO", "replication"])
                .await
                .contains("role:master")
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Moves `slot` from its master to the master on `to` the way `redis-cli --cluster reshard`
    /// does: IMPORTING / MIGRATING, the slot's keys (user streams, with history) MIGRATEd in
    /// batches, then NODE on the two and on every other master.
    pub async fn move_slot(&self, slot: u16, to: u16) {
        let (from, _) = self.shard_of(slot).await;
        let (from_id, to_id) = (self.node_id(from).await, self.node_id(to).await);
        self.set_slot(to, slot, "IMPORTING", &from_id).await;
        self.set_slot(from, slot, "MIGRATING", &to_id).await;
        self.migrate_keys(slot, from, to).await;
        self.set_slot(to, slot, "NODE", &to_id).await;
        self.set_slot(from, slot, "NODE", &to_id).await;
        for node in &self.nodes {
            if node.port != to && node.port != from {
                let role = self.cmd(node.port, &["INFO", "replication"]).await;
                if role.contains("role:master") {
                    self.set_slot(node.port, slot, "NODE", &to_id).await;
                }
            }
        }
    }

    /// Gives `slot` to the master on `to` by telling `to` alone (IMPORTING, then NODE, which bumps
    /// its epoch and broadcasts it): the old owner learns it over the cluster bus, even while its
    /// clients are paused, and drops the slot's shard-channel subscribers. The slot must hold no
    /// keys (the old owner would delete them). `from_id`: the old owner's id, asked beforehand.
    pub async fn claim_slot(&self, slot: u16, from_id: &str, to: u16) {
        let to_id = self.node_id(to).await;
        self.set_slot(to, slot, "IMPORTING", from_id).await;
        self.set_slot(to, slot, "NODE", &to_id).await;
    }

    /// `CLUSTER MYID` of the node on `port`.
    pub async fn node_id(&self, port: u16) -> String {
        self.cmd(port, &["CLUSTER", "MYID"]).await
    }

    async fn set_slot(&self, port: u16, slot: u16, how: &str, node: &str) {
        let slot = slot.to_string();
        let reply = self
            .cmd(port, &["CLUSTER", "SETSLOT", &slot, how, node])
            .await;
        assert_eq!(reply, "OK", "CLUSTER SETSLOT {slot} {how} on {port}");
    }

    /// MIGRATEs `slot`'s keys from `from` to `to`, a batch at a time, until none is left.
    async fn migrate_keys(&self, slot: u16, from: u16, to: u16) {
        let (slot, to) = (slot.to_string(), to.to_string());
        for _ in 0..1000 {
            let keys = self
                .query(from, &["CLUSTER", "GETKEYSINSLOT", &slot, "100"])
                .await;
            let keys: Vec<String> = match keys {
                Some(redis::Value::Array(keys)) => keys.iter().map(text).collect(),
                other => panic!("CLUSTER GETKEYSINSLOT {slot}: {other:?}"),
            };
            if keys.is_empty() {
                return;
            }
            let mut args = vec!["MIGRATE", "127.0.0.1", &to, "", "0", "5000", "KEYS"];
            args.extend(keys.iter().map(String::as_str));
            let reply = self.cmd(from, &args).await;
            assert!(reply == "OK" || reply == "NOKEY", "MIGRATE: {reply:?}");
        }
        panic!("slot {slot} kept getting keys");
    }

    /// The master ports.
    pub async fn masters(&self) -> Vec<u16> {
        let mut out = Vec::new();
        for node in &self.nodes {
            if self
                .cmd(node.port, &["INFO", "replication"])
                .await
                .contains("role:master")
            {
                out.push(node.port);
            }
        }
        out
    }

    /// The slot `key` (or channel) hashes to.
    pub async fn keyslot(&self, key: &str) -> u16 {
        let port = self.nodes[0].port;
        self.cmd(port, &["CLUSTER", "KEYSLOT", key])
            .await
            .parse()
            .expect("CLUSTER KEYSLOT answers a number")
    }
}

/// `127.0.0.1:7001@17001` → 7001.
fn addr_port(field: &str) -> u16 {
    field
        .split('@')
        .next()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .expect("node address")
}

fn text(v: &redis::Value) -> String {
    match v {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        redis::Value::Int(n) => n.to_string(),
        redis::Value::Okay => "OK".into(),
        redis::Value::VerbatimString { text, .. } => text.clone(),
        other => format!("{other:?}"),
    }
}

async fn answers_within(url: &str) -> bool {
    for _ in 0..100 {
        if redis_answers(url).await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.child.kill();
            let _ = node.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
