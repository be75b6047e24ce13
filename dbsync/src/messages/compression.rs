//! Compression of message bodies on the wire, negotiated with the standard HTTP headers: a
//! body is sent with `content-encoding: zstd` or `gzip`, and answers are compressed in the
//! first encoding the request's `accept-encoding` lists.

use std::io::{self, Read, Write};

/// Bodies smaller than this are sent as they are: compressing them saves nothing.
pub const MIN_COMPRESSED_BYTES: usize = 1024;

/// How a body is compressed on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// Not compressed.
    None,
    /// gzip (RFC 1952), for peers without zstd.
    Gzip,
    /// Zstandard (RFC 8878) at a fast level: the default.
    #[default]
    Zstd,
}

impl Compression {
    /// The `content-encoding` value, `None` for an uncompressed body.
    pub fn header(self) -> Option<&'static str> {
        match self {
            Compression::None => None,
            Compression::Gzip => Some("gzip"),
            Compression::Zstd => Some("zstd"),
        }
    }

    /// The encoding a `content-encoding` header names; `None` for one dbsync does not speak.
    pub fn from_header(value: Option<&str>) -> Option<Compression> {
        match value.map(str::trim) {
            None | Some("" | "identity") => Some(Compression::None),
            Some(v) if v.eq_ignore_ascii_case("gzip") => Some(Compression::Gzip),
            Some(v) if v.eq_ignore_ascii_case("zstd") => Some(Compression::Zstd),
            Some(_) => None,
        }
    }

    /// The encoding to answer in: zstd if `accept_encoding` lists it, else gzip if it does,
    /// else none.
    ///
    /// ```
    /// use dbsync::messages::Compression;
    /// assert_eq!(Compression::accepted(Some("gzip, zstd")), Compression::Zstd);
    /// assert_eq!(Compression::accepted(Some("gzip;q=1.0")), Compression::Gzip);
    /// assert_eq!(Compression::accepted(None), Compression::None);
    /// ```
    pub fn accepted(accept_encoding: Option<&str>) -> Compression {
        let listed = |name: &str| {
            accept_encoding.is_some_and(|header| {
                header.split(',').any(|item| {
                    let mut parts = item.split(';');
                    let coding = parts.next().unwrap_or("").trim();
                    let refused = parts.any(|p| p.trim().replace(' ', "") == "q=0");
                    coding.eq_ignore_ascii_case(name) && !refused
                })
            })
        };
        if listed("zstd") {
            Compression::Zstd
        } else if listed("gzip") {
            Compression::Gzip
        } else {
            Compression::None
        }
    }

    /// `body` compressed; bodies under [`MIN_COMPRESSED_BYTES`] come back as they are, with
    /// [`Compression::None`].
    ///
    /// ```
    /// use dbsync::messages::Compression;
    /// let body = br#"{"id":1,"name":"a city"}"#.repeat(100);
    /// let (encoding, wire) = Compression::Zstd.compress(&body);
    /// assert_eq!(encoding, Compression::Zstd);
    /// assert!(wire.len() < body.len() / 10);
    /// assert_eq!(encoding.decompress(&wire, body.len()).unwrap(), body);
    /// ```
    pub fn compress(self, body: &[u8]) -> (Compression, Vec<u8>) {
        if body.len() < MIN_COMPRESSED_BYTES {
            return (Compression::None, body.to_vec());
        }
        let compressed = match self {
            Compression::None => return (Compression::None, body.to_vec()),
            Compression::Gzip => {
                let mut encoder = flate2::write::GzEncoder::new(
                    Vec::with_capacity(body.len() / 4),
                    flate2::Compression::fast(),
                );
                encoder.write_all(body).and_then(|()| encoder.finish())
            }
            Compression::Zstd => zstd::bulk::compress(body, 1),
        };
        match compressed {
            Ok(wire) => (self, wire),
            // Compressing into memory does not fail; if it ever did, plain is still correct.
            Err(_) => (Compression::None, body.to_vec()),
        }
    }

    /// `wire` decompressed, refusing to grow past `limit` bytes: a small body that would
    /// expand without bound fails with [`io::ErrorKind::FileTooLarge`]; a corrupt one with
    /// another kind.
    pub fn decompress(self, wire: &[u8], limit: usize) -> io::Result<Vec<u8>> {
        let reader: Box<dyn Read + '_> = match self {
            Compression::None => {
                if wire.len() > limit {
                    return Err(io::ErrorKind::FileTooLarge.into());
                }
                return Ok(wire.to_vec());
            }
            Compression::Gzip => Box::new(flate2::read::GzDecoder::new(wire)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(wire)?),
        };
        let mut out = Vec::with_capacity(wire.len().saturating_mul(4).min(limit));
        let read = reader
            .take(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1))
            .read_to_end(&mut out)?;
        if read > limit {
            return Err(io::ErrorKind::FileTooLarge.into());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_encoding_round_trips() {
        let body = br#"{"table":"person","row_id":7,"command":"i"}"#.repeat(50);
        for encoding in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let (used, wire) = encoding.compress(&body);
            assert_eq!(used, encoding);
            assert_eq!(used.decompress(&wire, body.len()).unwrap(), body);
        }
    }

    #[test]
    fn a_body_that_expands_past_the_limit_is_refused() {
        let bomb = vec![b'a'; 10 << 20];
        for encoding in [Compression::Gzip, Compression::Zstd] {
            let (_, wire) = encoding.compress(&bomb);
            assert!(wire.len() < 64 << 10);
            let err = encoding.decompress(&wire, 1 << 20).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::FileTooLarge);
        }
    }

    #[test]
    fn a_corrupt_body_is_an_error_not_a_panic() {
        for encoding in [Compression::Gzip, Compression::Zstd] {
            let err = encoding.decompress(b"certainly not compressed", 1 << 20);
            assert!(err.is_err());
        }
    }

    #[test]
    fn unknown_encodings_are_named_as_such() {
        assert_eq!(Compression::from_header(Some("br")), None);
        assert_eq!(
            Compression::from_header(Some("ZSTD")),
            Some(Compression::Zstd)
        );
        assert_eq!(Compression::from_header(None), Some(Compression::None));
        assert_eq!(
            Compression::accepted(Some("zstd;q=0, gzip")),
            Compression::Gzip
        );
    }
}
