//! A ClickHouse cluster as real processes: Debian's ZooKeeper 3.8 and ClickHouse 18.16
//! servers as shards of replicas, all on free loopback ports, in temp dirs.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::clickhouse::ClickHouse;
use crate::process::{KillOnDrop, Workdir};
use crate::{free_port, wait_for};

/// A standalone ZooKeeper server (Debian's `zookeeper` package), for replicated tables and
/// distributed DDL.
pub struct ZooKeeper {
    pub port: u16,
    dir: Workdir,
    _child: KillOnDrop,
}

impl ZooKeeper {
    pub fn start() -> ZooKeeper {
        let dir = Workdir::temp();
        let port = free_port();
        let d = dir.path();
        fs::create_dir_all(d.join("data")).expect("ZooKeeper's data dir");
        fs::write(
            d.join("zoo.cfg"),
            format!(
                "tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={}/data\nclientPort={port}\n\
                 clientPortAddress=127.0.0.1\nadmin.enableServer=false\nmaxClientCnxns=0\n\
                 4lw.commands.whitelist=srvr\n",
                d.display()
            ),
        )
        .expect("write zoo.cfg");
        let child = Command::new("java")
            .args(["-Xmx256m", "-cp"])
            .arg("/etc/zookeeper/conf_example:/usr/share/java/zookeeper.jar")
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(d.join("zoo.cfg"))
            .current_dir(d)
            .stdout(Stdio::null())
            .stderr(fs::File::create(d.join("zookeeper.log")).expect("the log"))
            .spawn()
            .expect("ZooKeeper is installed (deploy/setup.sh: the zookeeper package)");
        let zk = ZooKeeper {
            port,
            dir,
            _child: KillOnDrop(child),
        };
        // Serving, not only listening (it refuses sessions while it starts): a ClickHouse
        // 18.16 whose DDL worker found no ZooKeeper at its start crashes on the first
        // ON CLUSTER statement. A command sent while it starts may be accepted and never
        // answered, so each probe gives up after a second and the next one asks again.
        let up = wait_for(Duration::from_secs(60), || {
            let probe = Some(Duration::from_secs(1));
            let mut c = TcpStream::connect(("127.0.0.1", port)).ok()?;
            c.set_read_timeout(probe).ok()?;
            c.set_write_timeout(probe).ok()?;
            c.write_all(b"srvr").ok()?;
            let mut answer = String::new();
            c.read_to_string(&mut answer).ok()?;
            answer.contains("Mode: standalone").then_some(())
        });
        assert!(
            up.is_some(),
            "ZooKeeper did not listen on {port}:\n{}",
            fs::read_to_string(zk.dir.path().join("zookeeper.log")).unwrap_or_default()
        );
        zk
    }
}

/// ClickHouse servers as `shards` shards of `replicas` replicas each, named `name` in every
/// server's `remote_servers`, with the `{shard}` and `{replica}` macros and distributed DDL
/// on one ZooKeeper. `nodes` is shard-major: shard 1's replicas, then shard 2's, ...
/// Inserts into a Distributed table return once the rows are on their shard
/// (`insert_distributed_sync` in the default profile).
pub struct ClickHouseCluster {
    pub name: &'static str,
    pub nodes: Vec<ClickHouse>,
    pub zookeeper: ZooKeeper,
}

impl ClickHouseCluster {
    pub fn start(shards: usize, replicas: usize) -> ClickHouseCluster {
        let name = "footfall";
        let zookeeper = ZooKeeper::start();
        let ports: Vec<(u16, u16, u16)> = (0..shards * replicas)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let servers: String = ports
            .chunks(replicas)
            .map(|shard| {
                let replicas: String = shard
                    .iter()
                    .map(|(_, tcp, _)| {
                        format!("<replica><host>127.0.0.1</host><port>{tcp}</port></replica>")
                    })
                    .collect();
                format!(
                    "<shard><internal_replication>true</internal_replication>{replicas}</shard>"
                )
            })
            .collect();
        let nodes = ports
            .iter()
            .enumerate()
            .map(|(i, &(http, tcp, interserver))| {
                // A replica killed between writing a part and recording it in ZooKeeper
                // finds the part unexpected at its start (the insert was never acknowledged,
                // so its writer sent it again). On a table of a few rows that part is over
                // the default share of wrong rows (0.5), and 18.16 refuses to start; with 1
                // it sets the part aside and fetches what its twin holds.
                let extra = format!(
                    "<remote_servers><{name}>{servers}</{name}></remote_servers>\n\
                     <zookeeper><node><host>127.0.0.1</host><port>{zk}</port></node>\
                     <session_timeout_ms>10000</session_timeout_ms></zookeeper>\n\
                     <macros><shard>{shard}</shard><replica>r{replica}</replica></macros>\n\
                     <interserver_http_port>{interserver}</interserver_http_port>\
                     <interserver_http_host>127.0.0.1</interserver_http_host>\n\
                     <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>\n\
                     <merge_tree><replicated_max_ratio_of_wrong_parts>1</replicated_max_ratio_of_wrong_parts></merge_tree>\n",
                    zk = zookeeper.port,
                    shard = i / replicas + 1,
                    replica = i % replicas + 1,
                );
                // A test's INSERT through clickhouse-client lands on its shard before it
                // returns, as the collector's do (its client asks for the same).
                let profile = "<insert_distributed_sync>1</insert_distributed_sync>".to_owned();
                ClickHouse::configured(Workdir::temp(), (http, tcp), None, (extra, profile))
            })
            .collect();
        let cluster = ClickHouseCluster {
            name,
            nodes,
            zookeeper,
        };
        // Distributed DDL needs each server's ZooKeeper session: one made just now may not
        // be up yet.
        for node in &cluster.nodes {
            let session = wait_for(Duration::from_secs(60), || {
                node.try_query("SELECT count() FROM system.zookeeper WHERE path = '/'")
                    .ok()
            });
            assert!(
                session.is_some(),
                "ClickHouse on {} has no ZooKeeper session",
                node.tcp_port
            );
        }
        cluster
    }
}
