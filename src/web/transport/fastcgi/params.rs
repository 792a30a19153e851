//! FastCGI name-value pairs (§3.4): the body of `FCGI_PARAMS` and `FCGI_GET_VALUES`, split
//! as borrowed bytes, parsed into owned pairs, and encoded.
//!
//! Names and values stay bytes here; which must be UTF-8 is decided where a request is made.

use super::record::ProtocolError;

/// One name-value pair (§3.4), as bytes.
pub type Pair = (Vec<u8>, Vec<u8>);
/// A name-value pair borrowed from the params stream.
pub(super) type PairRef<'a> = (&'a [u8], &'a [u8]);

/// Splits name-value pairs (§3.4) without copying. Lengths are 1 byte (< 128) or 4 bytes with
/// the top bit set.
pub(super) fn split_params(mut input: &[u8]) -> Result<Vec<PairRef<'_>>, ProtocolError> {
    fn length(input: &mut &[u8]) -> Result<usize, ProtocolError> {
        let bytes = *input;
        match bytes {
            [b, rest @ ..] if b & 0x80 == 0 => {
                *input = rest;
                Ok(usize::from(*b))
            }
            [b0, b1, b2, b3, rest @ ..] => {
                *input = rest;
                let len = u32::from_be_bytes([b0 & 0x7f, *b1, *b2, *b3]);
                // A u32 fits usize on every target we build for.
                usize::try_from(len).map_err(|_| ProtocolError::Truncated("name-value pair"))
            }
            _ => Err(ProtocolError::Truncated("name-value length")),
        }
    }
    fn take<'a>(input: &mut &'a [u8], len: usize) -> Result<&'a [u8], ProtocolError> {
        if input.len() < len {
            return Err(ProtocolError::Truncated("name-value pair"));
        }
        let (head, rest) = input.split_at(len);
        *input = rest;
        Ok(head)
    }
    let mut pairs = Vec::new();
    while !input.is_empty() {
        let name_len = length(&mut input)?;
        let value_len = length(&mut input)?;
        let name = take(&mut input, name_len)?;
        let value = take(&mut input, value_len)?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// Parses a whole `FCGI_PARAMS` stream (or a `FCGI_GET_VALUES` body) into name-value pairs.
/// Names and values stay bytes: deciding what must be UTF-8 is `request_from_meta_vars`'s job.
pub fn parse_params(input: &[u8]) -> Result<Vec<Pair>, ProtocolError> {
    Ok(split_params(input)?
        .into_iter()
        .map(|(n, v)| (n.to_vec(), v.to_vec()))
        .collect())
}

/// Encodes name-value pairs (§3.4), choosing 1- or 4-byte lengths.
///
/// # Panics
/// If a name or value is 2^31 bytes or longer, which the format cannot express.
pub fn encode_params<'a, I>(pairs: I) -> Vec<u8>
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
{
    fn length(out: &mut Vec<u8>, len: usize) {
        match u8::try_from(len) {
            Ok(b) if b < 0x80 => out.push(b),
            _ => {
                let len = u32::try_from(len)
                    .ok()
                    .filter(|l| *l < 0x8000_0000)
                    .expect("name-value length below 2^31");
                out.extend_from_slice(&(len | 0x8000_0000).to_be_bytes());
            }
        }
    }
    let mut out = Vec::new();
    for (name, value) in pairs {
        length(&mut out, name.len());
        length(&mut out, value.len());
        out.extend_from_slice(name);
        out.extend_from_slice(value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_with_one_and_four_byte_lengths() {
        let long = vec![b'v'; 300];
        let cases: Vec<(Vec<u8>, Vec<PairRef>)> = vec![
            (vec![], vec![]),
            (b"\x01\x02AVV".to_vec(), vec![(b"A", b"VV")]),
            (b"\x00\x00".to_vec(), vec![(b"", b"")]),
            // A 4-byte length may also encode a short one.
            (b"\x80\x00\x00\x01\x01AB".to_vec(), vec![(b"A", b"B")]),
            (
                [&b"\x04\x80\x00\x01\x2cPATH"[..], &long].concat(),
                vec![(b"PATH", &long)],
            ),
            (
                b"\x01\x00X\x01\x01YZ".to_vec(),
                vec![(b"X", b""), (b"Y", b"Z")],
            ),
            (b"\x01\x01\xff\xfe".to_vec(), vec![(b"\xff", b"\xfe")]),
        ];
        for (input, want) in cases {
            let want: Vec<(Vec<u8>, Vec<u8>)> =
                want.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
            assert_eq!(parse_params(&input), Ok(want.clone()), "{input:?}");
            let again = encode_params(want.iter().map(|(n, v)| (&n[..], &v[..])));
            assert_eq!(parse_params(&again), Ok(want));
        }
        assert_eq!(
            encode_params([(&b"A"[..], &long[..])])[..5],
            [1, 0x80, 0, 1, 0x2c]
        );
    }

    #[test]
    fn truncated_params_are_an_error() {
        let cases: &[&[u8]] = &[
            b"\x01",
            b"\x01\x02AV",
            b"\x80\x00\x00",
            b"\x01\x80\x00",
            b"\x80\x00\x00\x05\x00abcd",
            b"\xff\xff\xff\xff\x00",
            b"\x01\x01AB\x05",
        ];
        for input in cases {
            assert!(
                matches!(parse_params(input), Err(ProtocolError::Truncated(_))),
                "{input:?}"
            );
        }
    }
}
