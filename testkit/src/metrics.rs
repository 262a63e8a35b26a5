//! A process's Prometheus metrics, read as a scraper reads them.

use std::io::{Read, Write};
use std::net::TcpStream;

/// The text of `GET /metrics` on 127.0.0.1:`port`; None while nothing answers there.
pub fn metrics_text(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(text)
}

/// The value of the sample `name` in a `/metrics` text, labels included as the text writes
/// them (`footfall_rows_written_total{table="sightings"}`); None if there is no such sample
/// or its value is not a `T`.
pub fn metric<T: std::str::FromStr>(text: &str, name: &str) -> Option<T> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::metric;

    #[test]
    fn a_sample_is_found_by_its_whole_name() {
        let text = "# HELP footfall_x_total X.\nfootfall_x_total_more 9\nfootfall_x_total 3\n\
                    footfall_rows_written_total{table=\"sightings\"} 12\n";
        assert_eq!(metric::<u64>(text, "footfall_x_total"), Some(3));
        assert_eq!(
            metric::<u64>(text, "footfall_rows_written_total{table=\"sightings\"}"),
            Some(12)
        );
        assert_eq!(metric::<u64>(text, "footfall_x"), None);
        assert_eq!(metric::<f64>(text, "footfall_x_total"), Some(3.0));
    }
}
