//! Compressed request bodies (`Content-Encoding`): Codex may send zstd,
//! other clients gzip. The body limit applies to the decoded size too, so
//! a small compressed bomb is refused after at most the limit plus one
//! byte of output.
//!
//! Bounding the output is not enough for zstd: a decoder keeps the frame's
//! declared window of history and drains nothing until it holds more than
//! that, so a 40 KB frame declaring a terabyte window made the decoder
//! hold every byte it produced (gigabytes of tiny blocks). The declared
//! window is read from the frame header and refused before decoding when
//! it exceeds what the limit could ever need. gzip and deflate keep a fixed
//! 32 KiB window; brotli is not accepted.

use std::borrow::Cow;
use std::io::Read;

use crate::error::RequestError;

/// Whether the body carries a `Content-Encoding` other than `identity`.
pub fn is_encoded(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.trim().is_empty() && !v.trim().eq_ignore_ascii_case("identity"))
}

/// `body` decoded as its `Content-Encoding` says, at most `limit` bytes.
pub fn decode<'a>(
    headers: &http::HeaderMap,
    body: &'a [u8],
    limit: usize,
) -> Result<Cow<'a, [u8]>, RequestError> {
    let Some(encoding) = headers.get(http::header::CONTENT_ENCODING) else {
        return Ok(Cow::Borrowed(body));
    };
    let encoding = encoding
        .to_str()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    let read = match encoding.as_str() {
        "" | "identity" => return Ok(Cow::Borrowed(body)),
        "gzip" | "x-gzip" => flate2::read::MultiGzDecoder::new(body)
            .take(cap)
            .read_to_end(&mut out),
        "deflate" => flate2::read::ZlibDecoder::new(body)
            .take(cap)
            .read_to_end(&mut out),
        "zstd" => {
            if zstd_window(body).is_some_and(|w| w > max_window(limit)) {
                return Err(RequestError::BodyTooLarge { limit });
            }
            ruzstd::decoding::StreamingDecoder::new(body)
                .map_err(|_| corrupt(&encoding))?
                .take(cap)
                .read_to_end(&mut out)
        }
        _ => return Err(RequestError::UnsupportedEncoding(encoding)),
    };
    read.map_err(|_| corrupt(&encoding))?;
    if out.len() > limit {
        return Err(RequestError::BodyTooLarge { limit });
    }
    Ok(Cow::Owned(out))
}

/// The largest zstd window accepted with a body limit of `limit`: the limit
/// itself (no output can need more history than it may produce), but never
/// less than the 8 MiB every zstd decoder is expected to support, which
/// streaming encoders declare at their higher levels whatever the size.
fn max_window(limit: usize) -> u64 {
    u64::try_from(limit).unwrap_or(u64::MAX).max(8 << 20)
}

/// The window a zstd frame declares (RFC 8878 3.1.1.1): the content size of
/// a single-segment frame, else the window descriptor's. `None` when the
/// header is cut short or not a zstd frame (the decoder then says why).
fn zstd_window(frame: &[u8]) -> Option<u64> {
    let (magic, rest) = frame.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*magic) != 0xFD2F_B528 {
        return None;
    }
    let (&descriptor, rest) = rest.split_first()?;
    let single_segment = descriptor & 0x20 != 0;
    if !single_segment {
        let w = *rest.first()?;
        let log = 10 + u32::from(w >> 3);
        let base = 1u64.checked_shl(log)?;
        return Some(base + base / 8 * u64::from(w & 7));
    }
    let dict_bytes = [0, 1, 2, 4][usize::from(descriptor & 3)];
    let size_bytes = [1, 2, 4, 8][usize::from(descriptor >> 6)];
    let size = rest.get(dict_bytes..dict_bytes + size_bytes)?;
    let mut le = [0u8; 8];
    le[..size_bytes].copy_from_slice(size);
    let n = u64::from_le_bytes(le);
    // A two-byte size is stored less 256.
    Some(if size_bytes == 2 { n + 256 } else { n })
}

fn corrupt(encoding: &str) -> RequestError {
    RequestError::invalid(
        format!("The request body could not be decoded as {encoding}."),
        None,
    )
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn headers(encoding: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::CONTENT_ENCODING,
            http::HeaderValue::from_str(encoding).unwrap(),
        );
        h
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zstd(data: &[u8]) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
    }

    #[test]
    fn plain_bodies_are_not_copied() {
        let body = b"{}";
        assert!(matches!(
            decode(&http::HeaderMap::new(), body, 10),
            Ok(Cow::Borrowed(_))
        ));
        assert!(matches!(
            decode(&headers("identity"), body, 10),
            Ok(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn gzip_and_zstd_decode() {
        let json = br#"{"model":"m","input":"hi"}"#;
        assert_eq!(&*decode(&headers("gzip"), &gzip(json), 100).unwrap(), json);
        assert_eq!(&*decode(&headers("zstd"), &zstd(json), 100).unwrap(), json);
    }

    #[test]
    fn the_limit_applies_to_the_decoded_size() {
        let spaces = vec![b' '; 1 << 20];
        for (encoding, bomb) in [("gzip", gzip(&spaces)), ("zstd", zstd(&spaces))] {
            assert!(bomb.len() < 8 * 1024, "{encoding}: {}", bomb.len());
            assert_eq!(
                decode(&headers(encoding), &bomb, 64 * 1024),
                Err(RequestError::BodyTooLarge { limit: 64 * 1024 })
            );
        }
    }

    /// A frame that declares a 1 TiB window (descriptor `0xf0`), then
    /// 10,000 RLE blocks of 128 KiB of spaces (4 bytes each): 40 KB that
    /// decode to 1.3 GB.
    fn huge_window_frame() -> Vec<u8> {
        let mut f = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xf0];
        // Block header (3 bytes, little endian): last flag, type 1 (RLE)
        // in bits 1-2, the regenerated size from bit 3; then the byte.
        let header = |last: u32| (last | 1 << 1 | (128 << 10) << 3).to_le_bytes();
        for i in 0..10_000 {
            f.extend_from_slice(&header(u32::from(i == 9_999))[..3]);
            f.push(b' ');
        }
        f
    }

    #[test]
    fn a_declared_window_over_the_limit_is_refused_before_decoding() {
        let bomb = huge_window_frame();
        assert_eq!(zstd_window(&bomb), Some(1 << 40));
        assert_eq!(
            decode(&headers("zstd"), &bomb, 64 * 1024),
            Err(RequestError::BodyTooLarge { limit: 64 * 1024 })
        );
        // Windows an ordinary encoder declares pass: its own frames decode.
        let json = br#"{"model":"m"}"#;
        let small = zstd(json);
        assert!(zstd_window(&small).is_some_and(|w| w <= max_window(100)));
        assert_eq!(&*decode(&headers("zstd"), &small, 100).unwrap(), json);
    }

    #[test]
    fn window_descriptors_and_content_sizes_are_read_as_the_rfc_says() {
        // Window descriptor 0x58: log 10 + 11, mantissa 0 = 2 MiB.
        assert_eq!(
            zstd_window(&[0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58]),
            Some(2 << 20)
        );
        // Mantissa 3 adds 3/8.
        assert_eq!(
            zstd_window(&[0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x03]),
            Some(1024 + 384)
        );
        // Single segment, one-byte size; two-byte size stored less 256.
        assert_eq!(zstd_window(&[0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x10]), Some(16));
        assert_eq!(
            zstd_window(&[0x28, 0xb5, 0x2f, 0xfd, 0x60, 0x00, 0x01]),
            Some(512)
        );
        // Cut short or not zstd: left to the decoder.
        assert_eq!(zstd_window(&[0x28, 0xb5, 0x2f, 0xfd, 0x00]), None);
        assert_eq!(zstd_window(b"{}"), None);
    }

    #[test]
    fn unknown_or_corrupt_encodings_are_refused() {
        assert_eq!(
            decode(&headers("br"), b"x", 10),
            Err(RequestError::UnsupportedEncoding("br".into()))
        );
        for e in ["gzip", "zstd", "deflate"] {
            assert!(matches!(
                decode(&headers(e), b"not compressed", 100),
                Err(RequestError::Invalid { .. })
            ));
        }
    }
}
