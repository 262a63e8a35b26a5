//! The Fryza lab days (`pcaps/fryza/`): a whole day of probe requests per capture, and beside
//! it a CSV (`;`-separated, one row per frame, in the capture's order) with the true number
//! of people in the room at each frame (`occupancy`), the anonymized source address and
//! whether it is randomized. The CSV's clock is local time; the frames' times come from the
//! capture (UTC).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// One frame of a labelled day.
#[derive(Clone, Debug)]
pub struct LabelledFrame {
    /// Capture time, ms since the Unix epoch (UTC).
    pub ms: i64,
    /// The anonymized source address, as text.
    pub src: String,
    /// Globally administered (not randomized).
    pub global: bool,
    /// People in the room (`None`: the cell is `nan`).
    pub occupancy: Option<f64>,
}

/// A labelled day: its capture and its frames with their labels.
#[derive(Clone, Debug)]
pub struct FryzaDay {
    /// `position_N_DATE`.
    pub name: String,
    pub pcap: PathBuf,
    pub frames: Vec<LabelledFrame>,
}

/// The names of the labelled days (`position_N_DATE`), sorted.
pub fn fryza_days() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(crate::pcaps_dir().join("fryza"))
        .expect("pcaps/fryza")
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "pcap").then(|| p.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    names.sort();
    names
}

impl FryzaDay {
    /// Reads day `name`: the capture's frame times and the CSV's labels, row i with frame i.
    pub fn load(name: &str) -> FryzaDay {
        let dir = crate::pcaps_dir().join("fryza");
        let pcap = dir.join(format!("{name}.pcap"));
        let times = frame_times(&pcap);
        let mut rdr = csv::ReaderBuilder::new()
            .delimiter(b';')
            .from_path(dir.join(format!("{name}.csv")))
            .expect("the day's CSV");
        let headers = rdr.headers().expect("a header").clone();
        let col = |n: &str| {
            headers
                .iter()
                .position(|h| h == n)
                .unwrap_or_else(|| panic!("{name}.csv has no column {n}"))
        };
        let (src, randomized, occupancy) = (col("src"), col("randomized"), col("occupancy"));
        let frames = rdr
            .records()
            .zip(times)
            .map(|(rec, ms)| {
                let rec = rec.expect("a CSV row");
                LabelledFrame {
                    ms,
                    src: rec.get(src).unwrap_or_default().to_owned(),
                    global: rec.get(randomized) == Some("0"),
                    occupancy: rec
                        .get(occupancy)
                        .and_then(|o| o.parse::<f64>().ok())
                        .filter(|o| o.is_finite()),
                }
            })
            .collect();
        FryzaDay {
            name: name.to_owned(),
            pcap,
            frames,
        }
    }

    /// The truth per window of `window_ms` (aligned to the epoch): the mean occupancy of the
    /// window's labelled frames; windows without one are absent.
    pub fn truth(&self, window_ms: i64) -> BTreeMap<i64, f64> {
        let mut sums: BTreeMap<i64, (f64, u32)> = BTreeMap::new();
        for f in &self.frames {
            if let Some(o) = f.occupancy {
                let s = sums
                    .entry(f.ms.div_euclid(window_ms) * window_ms)
                    .or_default();
                s.0 += o;
                s.1 += 1;
            }
        }
        sums.into_iter()
            .map(|(w, (sum, n))| (w, sum / f64::from(n)))
            .collect()
    }

    /// `window_start,people` (the truth CSV `footfall-collector calibrate` reads).
    pub fn truth_csv(&self, window_ms: i64) -> String {
        let mut s = String::from("window_start,people\n");
        for (w, people) in self.truth(window_ms) {
            let start = chrono::DateTime::from_timestamp_millis(w).expect("a time after 1970");
            s.push_str(&format!(
                "{},{people}\n",
                start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ));
        }
        s
    }
}

/// Each frame's capture time, ms since the epoch, in file order.
fn frame_times(pcap: &Path) -> Vec<i64> {
    let mut r = pcap_file::pcap::PcapReader::new(fs::File::open(pcap).expect("the capture"))
        .expect("a pcap file");
    let mut times = Vec::new();
    while let Some(p) = r.next_packet() {
        let ms = p.expect("a whole record").timestamp.as_millis();
        times.push(i64::try_from(ms).expect("a time after 1970"));
    }
    times
}
