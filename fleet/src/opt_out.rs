//! Opt-out lists from addresses: a person who asks not to be counted gives their device's
//! address; the tenant holder derives its device key in every epoch the request covers, for
//! the sensors' `identity.opt_out_file` and `footfall-collector purge`. The addresses are read
//! from standard input (never the command line, which `ps` shows) and never written out.

use device_id::{device_key, epoch_key, Epochs};

/// Parses one address per line (`aa:bb:cc:dd:ee:ff` or with `-`; `#` comments). An error
/// names the line, not its text.
pub fn parse_macs(text: &str) -> Result<Vec<[u8; 6]>, String> {
    let mut macs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.split([':', '-']).collect();
        let mut mac = [0u8; 6];
        let ok = parts.len() == 6
            && parts
                .iter()
                .zip(&mut mac)
                .all(|(p, b)| p.len() == 2 && u8::from_str_radix(p, 16).map(|v| *b = v).is_ok());
        if !ok {
            return Err(format!(
                "line {}: not an address (six hex pairs, e.g. aa:bb:cc:dd:ee:ff)",
                n + 1
            ));
        }
        macs.push(mac);
    }
    if macs.is_empty() {
        return Err("no address on standard input".into());
    }
    Ok(macs)
}

/// The opt-out list of `macs` in every epoch of `epochs` from `from_ms` to `to_ms`: each
/// epoch's keys under a comment naming it.
pub fn list(
    secret: &[u8],
    epochs: Epochs,
    (from_ms, to_ms): (i64, i64),
    macs: &[[u8; 6]],
) -> String {
    let mut out = String::new();
    for epoch in epochs.epoch_of(from_ms)..=epochs.epoch_of(to_ms) {
        let start = epochs.start_of(epoch);
        let day = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| t.format("%Y-%m-%d").to_string())
                .unwrap_or_default()
        };
        out.push_str(&format!(
            "# epoch {epoch}: {} to {}\n",
            day(start),
            day(start + epochs.epoch_ms() - 1)
        ));
        let key = epoch_key(secret, epoch);
        for mac in macs {
            out.push_str(&format!("{}\n", device_key(&key, mac)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_epoch_gets_each_address_key_and_a_bad_line_is_named_not_shown() {
        let macs =
            parse_macs("# two phones\nA4:5E:60:01:02:03\na4-5e-60-0a-0b-0c\n").expect("addresses");
        assert_eq!(macs[1], [0xa4, 0x5e, 0x60, 0x0a, 0x0b, 0x0c]);
        let epochs = Epochs::new(45, 30);
        let day = 86_400_000;
        let from = epochs.start_of(461) + day;
        let text = list(
            b"secret-secret-secret",
            epochs,
            (from, from + 45 * day),
            &macs,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6, "{text}");
        assert_eq!(lines[0], "# epoch 461: 2026-10-19 to 2026-12-02");
        assert_eq!(
            lines[4],
            device_key(&epoch_key(b"secret-secret-secret", 462), &macs[0]).to_string()
        );
        assert_ne!(lines[1], lines[4], "keys change with the epoch");
        let e = parse_macs("a4:5e:60:01:02:03\na4:5e:60:01:02\n").expect_err("short");
        assert!(e.starts_with("line 2:") && !e.contains("a4"), "{e}");
        assert!(parse_macs("# none\n").is_err());
    }
}
