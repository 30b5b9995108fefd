//! Compressed request bodies (`Content-Encoding`): Codex may send zstd,
//! other clients gzip. The body limit applies to the decoded size too, so
//! a small compressed bomb is refused after at most the limit plus one
//! byte of output.

use std::borrow::Cow;
use std::io::Read;

use crate::error::RequestError;

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
        "zstd" => ruzstd::decoding::StreamingDecoder::new(body)
            .map_err(|_| corrupt(&encoding))?
            .take(cap)
            .read_to_end(&mut out),
        _ => return Err(RequestError::UnsupportedEncoding(encoding)),
    };
    read.map_err(|_| corrupt(&encoding))?;
    if out.len() > limit {
        return Err(RequestError::BodyTooLarge { limit });
    }
    Ok(Cow::Owned(out))
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
