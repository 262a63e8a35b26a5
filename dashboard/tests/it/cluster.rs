//! The dashboard on a ClickHouse cluster (2 shards of 2 replicas on ZooKeeper, the tables
//! Distributed over them by site): every page's figures are one server's.

use testkit::ClickHouseCluster;

use crate::util::{
    clickhouse, fill_campaigns, fill_sensors, fill_store_detail, fill_stores, get, migrate,
    sign_in, start, start_on,
};

#[test]
fn a_clusters_pages_show_what_one_servers_show() {
    let one = clickhouse();
    let cluster = ClickHouseCluster::start(2, 2);
    let node = &cluster.nodes[0];
    let on_cluster = format!("{}\"\ncluster = \"{}", node.url(), cluster.name);
    migrate(&on_cluster);
    let (one_dir, cluster_dir) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    for (ch, dir) in [(&one, &one_dir), (node, &cluster_dir)] {
        fill_stores(ch);
        fill_store_detail(ch);
        fill_campaigns(ch, dir.path());
        fill_sensors(ch);
    }
    // The rows are spread over both shards.
    for shard in [&cluster.nodes[0], &cluster.nodes[2]] {
        let n = shard.query("SELECT count() FROM footfall.traffic_local");
        assert_ne!(n.trim(), "0", "a shard without traffic rows");
    }
    let pages = |base: &str| -> Vec<serde_json::Value> {
        let ana = sign_in(base, "ana", "ana's long password");
        [
            "/stores.json?from=2026-03-07&to=2026-03-29",
            "/store.json?site=acme-2&from=2026-03-16&to=2026-03-29",
            "/store.json?site=acme-1&from=2026-03-07&to=2026-03-20",
            "/compare.json?stores=acme-1,acme-2&from=2026-03-16&to=2026-03-22",
            "/campaigns.json",
            "/sensors.json",
        ]
        .iter()
        .map(|path| {
            let (status, res) = get(&format!("{base}{path}"), Some(&ana));
            assert_eq!(status, 200, "{path}");
            serde_json::from_str(&res.into_string().expect("body")).expect("json")
        })
        .collect()
    };
    let (d1, d2) = (
        start(one_dir.path(), &one),
        start_on(cluster_dir.path(), &on_cluster),
    );
    let (mut want, mut got) = (pages(&d1.base), pages(&d2.base));
    // The sensors' heartbeats were written relative to now(), by two fills a moment apart.
    for sensors in [want.last_mut(), got.last_mut()].into_iter().flatten() {
        for s in sensors["sensors"].as_array_mut().expect("sensors") {
            s.as_object_mut()
                .expect("a sensor")
                .retain(|k, _| !k.ends_with("_ms"));
        }
    }
    assert!(
        want[0]["stores"].as_array().is_some_and(|s| !s.is_empty()),
        "{}",
        want[0]
    );
    for (w, g) in want.iter().zip(&got) {
        assert_eq!(g, w);
    }
}
