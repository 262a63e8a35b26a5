//! Files of envelopes, as `footfall-agent replay --out` writes them and the offline tools
//! read them (crate docs, "Files of envelopes"): JSON lines, or binary envelopes back to back,
//! told apart by the first byte.

use std::io::{self, BufRead};

use crate::{BinaryError, Encoding, Envelope};

/// Appends `env` to `out` as one record of a file in `encoding`: a JSON line, or the binary
/// envelope itself (its layout delimits it).
pub fn append_record(env: &Envelope, encoding: Encoding, out: &mut Vec<u8>) {
    env.encode_into(encoding, out);
    if encoding == Encoding::Json {
        out.push(b'\n');
    }
}

/// Why a file of envelopes could not be read, and where.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("read failed")]
    Io(#[from] io::Error),
    #[error("line {line}: {reason}")]
    Json { line: usize, reason: String },
    #[error("the envelope at byte {offset}: {error}")]
    Binary { offset: u64, error: BinaryError },
}

/// The envelopes of a file, in order. Reading stops at the first error, which is returned
/// with where it was; the envelopes before it are good.
pub fn records<R: BufRead>(inner: R) -> Records<R> {
    Records {
        inner,
        encoding: None,
        buf: Vec::new(),
        start: 0,
        offset: 0,
        line: 0,
        eof: false,
        failed: false,
    }
}

/// The iterator of [`records`].
pub struct Records<R> {
    inner: R,
    /// Known once the first byte has been seen.
    encoding: Option<Encoding>,
    /// Binary: bytes read and not yet decoded start at `buf[start]`, file offset `offset`.
    buf: Vec<u8>,
    start: usize,
    offset: u64,
    /// JSON: the number of the line last read.
    line: usize,
    eof: bool,
    failed: bool,
}

/// How much a binary read asks for at a time: a few envelopes of 500 sightings.
const CHUNK: usize = 64 * 1024;

impl<R: BufRead> Records<R> {
    fn json(&mut self) -> Option<Result<Envelope, FileError>> {
        loop {
            self.buf.clear();
            match self.inner.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(_) => self.line += 1,
                Err(e) => return Some(Err(e.into())),
            }
            if self.buf.trim_ascii().is_empty() {
                continue;
            }
            return Some(
                serde_json::from_slice(&self.buf).map_err(|e| FileError::Json {
                    line: self.line,
                    reason: e.to_string(),
                }),
            );
        }
    }

    fn binary(&mut self) -> Option<Result<Envelope, FileError>> {
        loop {
            if self.start < self.buf.len() {
                match Envelope::from_binary_prefix(&self.buf[self.start..]) {
                    Ok((env, len)) => {
                        self.start += len;
                        self.offset += len as u64;
                        return Some(Ok(env));
                    }
                    // The rest of it has not been read yet.
                    Err(BinaryError::Truncated { .. }) if !self.eof => {}
                    Err(error) => {
                        return Some(Err(FileError::Binary {
                            offset: self.offset,
                            error,
                        }))
                    }
                }
            } else if self.eof {
                return None;
            }
            self.buf.drain(..self.start);
            self.start = 0;
            if let Err(e) = self.fill() {
                return Some(Err(e.into()));
            }
        }
    }

    /// Appends up to [`CHUNK`] bytes to `buf`; sets `eof` when there are none left.
    fn fill(&mut self) -> io::Result<()> {
        let wanted = self.buf.len() + CHUNK;
        while self.buf.len() < wanted {
            let chunk = self.inner.fill_buf()?;
            if chunk.is_empty() {
                self.eof = true;
                break;
            }
            let n = chunk.len().min(wanted - self.buf.len());
            self.buf.extend_from_slice(&chunk[..n]);
            self.inner.consume(n);
        }
        Ok(())
    }
}

impl<R: BufRead> Iterator for Records<R> {
    type Item = Result<Envelope, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let encoding = match self.encoding {
            Some(e) => e,
            None => {
                let first = match self.inner.fill_buf() {
                    Ok(b) => b.first().copied()?,
                    Err(e) => return Some(Err(e.into())),
                };
                *self.encoding.insert(if first == crate::MAGIC[0] {
                    Encoding::Binary
                } else {
                    Encoding::Json
                })
            }
        };
        let next = match encoding {
            Encoding::Json => self.json(),
            Encoding::Binary => self.binary(),
        };
        self.failed = matches!(next, Some(Err(_)));
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DeviceKey, Sighting};

    fn envelopes() -> Vec<Envelope> {
        let base = crate::envelope::tests::sample();
        (0..40u64)
            .map(|seq| Envelope {
                seq,
                // Envelopes larger than a read, so that one spans two.
                sightings: (0..(seq * 100) % 2000)
                    .map(|i| Sighting {
                        device: DeviceKey(seq << 32 | i),
                        ..base.sightings[0].clone()
                    })
                    .collect(),
                ..base.clone()
            })
            .collect()
    }

    fn file(envs: &[Envelope], encoding: Encoding) -> Vec<u8> {
        let mut out = Vec::new();
        for e in envs {
            append_record(e, encoding, &mut out);
        }
        out
    }

    #[test]
    fn a_file_in_either_encoding_reads_back_envelope_for_envelope() {
        let envs = envelopes();
        for encoding in [Encoding::Json, Encoding::Binary] {
            let bytes = file(&envs, encoding);
            let back: Vec<Envelope> = records(&bytes[..])
                .collect::<Result<_, _>>()
                .unwrap_or_else(|e| panic!("{encoding:?}: {e}"));
            assert_eq!(back, envs, "{encoding:?}");
        }
        assert_eq!(records(&b""[..]).count(), 0);
    }

    #[test]
    fn a_cut_or_damaged_file_keeps_what_came_before_and_says_where() {
        let envs = envelopes();
        let bytes = file(&envs, Encoding::Binary);
        let third = file(&envs[..3], Encoding::Binary).len();
        let read = |bytes: &[u8]| {
            let mut good = 0;
            for r in records(bytes) {
                match r {
                    Ok(_) => good += 1,
                    Err(e) => return (good, Some(e.to_string())),
                }
            }
            (good, None)
        };
        // Cut inside the fourth envelope.
        let (good, err) = read(&bytes[..third + 100]);
        assert_eq!(good, 3);
        let err = err.expect("a cut envelope is an error");
        assert!(
            err.starts_with(&format!("the envelope at byte {third}: truncated")),
            "{err}"
        );
        // A byte that is not a flag where the fourth envelope's first sighting begins.
        let mut damaged = bytes.clone();
        damaged[third + 3 + 2 + 1 + 4 + 1 + 7 + 8 + 4 + 8 + 4] = 0x80;
        let (good, err) = read(&damaged);
        assert_eq!(good, 3);
        assert!(err.expect("an error").contains("unknown flag bits"));

        let json = file(&envs[..2], Encoding::Json);
        let mut bad = json.clone();
        bad.extend_from_slice(b"\n{\"v\":\n");
        let (good, err) = read(&bad);
        assert_eq!(good, 2);
        assert!(err.expect("an error").starts_with("line 4: "));
    }
}
