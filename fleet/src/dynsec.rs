//! The broker's access rules: the file of Mosquitto's dynamic security plugin
//! (`dynamic-security.json`, named by `plugin_opt_config_file` in the shipped
//! `footfall.conf`), which the plugin reads when the broker starts.
//!
//! Why this plugin and not an `acl_file`: Mosquitto 2.0's `acl_file` grants every
//! subscription and checks only deliveries, so a sensor could join the collectors' `$share`
//! group and take its turn of the messages, which then reach no one. The plugin checks
//! subscriptions, and denies what no role allows:
//! - by default no client may publish or subscribe (receiving what one may subscribe to is
//!   allowed);
//! - each sensor has a role of its own: publish its two topics
//!   (`footfall/v1/<site>/<sensor>/{sightings,status}`), nothing else (the plugin has no
//!   `%u` patterns, hence one role per sensor);
//! - the `collectors` role subscribes to every sensor's two topics, shared or not.
//!
//! A client whose certificate the fleet CA signed but who is not in this file may do nothing.
//! The file is edited here and read by the broker at start: restart it after an enrolment.
//! Entries the plugin or a person added are kept as they are.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// The role every collector has.
const COLLECTORS: &str = "collectors";

/// Writes the rules of a fleet with no client yet, unless `path` exists.
pub fn create(path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let p = wire::topic::PREFIX;
    let subscribe = |topic: String| json!({"acltype": "subscribePattern", "topic": topic, "priority": 0, "allow": true});
    let doc = json!({
        "defaultACLAccess": {
            "publishClientSend": false,
            "publishClientReceive": true,
            "subscribe": false,
            "unsubscribe": true
        },
        "clients": [],
        "groups": [],
        "roles": [{
            "rolename": COLLECTORS,
            "textdescription": "footfall-fleet: reads every sensor's topics, shared or not, writes none",
            "acls": [
                subscribe(format!("{p}/+/+/sightings")),
                subscribe(format!("{p}/+/+/status")),
                subscribe(format!("$share/+/{p}/+/+/sightings")),
                subscribe(format!("$share/+/{p}/+/+/status")),
            ]
        }]
    });
    write(path, &doc)
}

/// Adds a sensor (identity `<site>/<sensor>`) with its own role: publish its two topics.
/// A sensor there already (enrolled again after a revocation) is left as it is.
pub fn add_sensor(path: &Path, identity: &str) -> anyhow::Result<()> {
    let mut doc = read(path)?;
    if known(&doc, identity) {
        return Ok(());
    }
    let role = format!("sensor {identity}");
    let publish = |topic: String| json!({"acltype": "publishClientSend", "topic": topic, "priority": 0, "allow": true});
    let p = wire::topic::PREFIX;
    list(&mut doc, "roles", path)?.push(json!({
        "rolename": role,
        "textdescription": "footfall-fleet: this sensor's sightings and status, nothing else",
        "acls": [
            publish(format!("{p}/{identity}/sightings")),
            publish(format!("{p}/{identity}/status")),
        ]
    }));
    list(&mut doc, "clients", path)?
        .push(json!({"username": identity, "roles": [{"rolename": role}]}));
    write(path, &doc)
}

/// Adds a collector (identity `collector-<name>`) with the collectors' role, unless it is
/// there already.
pub fn add_collector(path: &Path, identity: &str) -> anyhow::Result<()> {
    let mut doc = read(path)?;
    if known(&doc, identity) {
        return Ok(());
    }
    let has_role = doc["roles"]
        .as_array()
        .is_some_and(|r| r.iter().any(|r| r["rolename"] == COLLECTORS));
    if !has_role {
        bail!(
            "{} has no {COLLECTORS:?} role: it was not written by footfall-fleet broker",
            path.display()
        );
    }
    list(&mut doc, "clients", path)?
        .push(json!({"username": identity, "roles": [{"rolename": COLLECTORS}]}));
    write(path, &doc)
}

fn read(path: &Path) -> anyhow::Result<Value> {
    let text = fs::read_to_string(path).with_context(|| {
        format!(
            "reading the broker's access rules {} (footfall-fleet broker writes them)",
            path.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))
}

fn list<'a>(doc: &'a mut Value, key: &str, path: &Path) -> anyhow::Result<&'a mut Vec<Value>> {
    doc[key]
        .as_array_mut()
        .with_context(|| format!("{}: no {key:?} list", path.display()))
}

fn known(doc: &Value, identity: &str) -> bool {
    doc["clients"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["username"] == identity))
}

/// Replaces the file whole (a temporary file renamed over it), readable by its owner only.
fn write(path: &Path, doc: &Value) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(doc).expect("JSON serializes");
    crate::pki::write_private(&tmp, text.as_bytes())?;
    fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}
