//! Keyset pagination's cursors: where a page ended (a [`Position`] in one of the orders), as
//! an opaque `after=` token that is checked before it is used. What the positions mean in SQL
//! is the catalog's; this module only encodes, binds and checks them.
//!
//! A token is base64url (no padding) of: a version byte, a kind byte, the position's fields
//! (integers and float bits big-endian, strings as a 2-byte length and UTF-8), then the first
//! 8 bytes of SHA-256 over those bytes and the *context* — the listing the cursor was made for
//! (order, category, words). A token edited by hand, cut short, or reused with another
//! category, order or search fails the check and is refused as [`QueryError::BadCursor`]
//! (400 `bad-cursor`). No server secret is needed: a cursor is a position, not a capability —
//! every page is filtered by the caller's permissions, so a forged position could only show
//! what the caller may list anyway.

use sha2::{Digest, Sha256};

use super::query::QueryError;

/// The orders a listing of images can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Newest first: `created` descending, then the id ascending (ties are common: a batch
    /// upload within one millisecond).
    Newest,
    /// By name: the metadata `title` (a string, trimmed, its first 100 characters) or, without
    /// one, the id; ASCII case folded; then the id.
    Name,
}

impl Order {
    /// `newest` or `name`, as the REST parameter `order` and the pages spell them.
    pub fn parse(text: &str) -> Result<Order, QueryError> {
        match text {
            "newest" => Ok(Order::Newest),
            "name" => Ok(Order::Name),
            _ => Err(QueryError::Invalid {
                name: "order",
                reason: format!("expected \"newest\" or \"name\", got {text:?}"),
            }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Order::Newest => "newest",
            Order::Name => "name",
        }
    }
}

/// The last item of a page, in the page's order: the next page starts after it.
#[derive(Debug, Clone, PartialEq)]
pub enum Position {
    /// [`Order::Newest`]: creation time (unix ms) and id.
    Newest { created: i64, id: String },
    /// [`Order::Name`]: the name key (as the catalog computes it) and id.
    Name { key: String, id: String },
    /// Full-text relevance, among the newest matches: the bm25 score (lower is better), the
    /// row's sequence number, and the *floor* — the lowest sequence number of the matches
    /// ranked (0: all of them), fixed by the first page so that every page ranks the same set.
    Rank { rank: f64, seq: i64, floor: i64 },
    /// Full-text matches past the ranked ones, newest first: the row's sequence number.
    Recent { seq: i64 },
}

const VERSION: u8 = 1;
const TAG: usize = 8;
/// Longest string field (a name key is at most 100 characters, 400 bytes; an id 40).
const MAX_FIELD: usize = 1024;

/// The token of `position`, bound to `context`.
pub fn encode(position: &Position, context: &str) -> String {
    let mut bytes = vec![VERSION];
    match position {
        Position::Newest { created, id } => {
            bytes.push(b'n');
            bytes.extend_from_slice(&created.to_be_bytes());
            put_str(&mut bytes, id);
        }
        Position::Name { key, id } => {
            bytes.push(b'a');
            put_str(&mut bytes, key);
            put_str(&mut bytes, id);
        }
        Position::Rank { rank, seq, floor } => {
            bytes.push(b'b');
            bytes.extend_from_slice(&rank.to_bits().to_be_bytes());
            bytes.extend_from_slice(&seq.to_be_bytes());
            bytes.extend_from_slice(&floor.to_be_bytes());
        }
        Position::Recent { seq } => {
            bytes.push(b's');
            bytes.extend_from_slice(&seq.to_be_bytes());
        }
    }
    let tag = tag(&bytes, context);
    bytes.extend_from_slice(&tag);
    base64url(&bytes)
}

/// The position of `token`, when it was made for `context` and is intact.
pub fn decode(token: &str, context: &str) -> Result<Position, QueryError> {
    let bad = |why: &str| QueryError::BadCursor(why.to_string());
    let bytes = unbase64url(token).ok_or_else(|| bad("not a cursor this server made"))?;
    if bytes.len() < 2 + TAG {
        return Err(bad("too short"));
    }
    let (body, mac) = bytes.split_at(bytes.len() - TAG);
    if body[0] != VERSION {
        return Err(bad("from another version of imgserv"));
    }
    if tag(body, context) != mac {
        return Err(bad(
            "altered, or made for another listing (category, order or search words)",
        ));
    }
    let mut r = Reader(&body[2..]);
    let position = match body[1] {
        b'n' => Position::Newest {
            created: i64::from_be_bytes(r.array()?),
            id: r.string()?,
        },
        b'a' => Position::Name {
            key: r.string()?,
            id: r.string()?,
        },
        // Before the floor (0.x): every match was ranked, as floor 0 ranks them.
        b'r' => Position::Rank {
            rank: f64::from_bits(u64::from_be_bytes(r.array()?)),
            seq: i64::from_be_bytes(r.array()?),
            floor: 0,
        },
        b'b' => Position::Rank {
            rank: f64::from_bits(u64::from_be_bytes(r.array()?)),
            seq: i64::from_be_bytes(r.array()?),
            floor: i64::from_be_bytes(r.array()?),
        },
        b's' => Position::Recent {
            seq: i64::from_be_bytes(r.array()?),
        },
        _ => return Err(bad("unknown kind")),
    };
    if !r.0.is_empty() {
        return Err(bad("trailing bytes"));
    }
    if let Position::Rank { rank, .. } = position
        && !rank.is_finite()
    {
        return Err(bad("not a finite rank"));
    }
    Ok(position)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Strings are cut at MAX_FIELD bytes on a character boundary (never reached by the
    // catalog's keys, which are shorter).
    let mut end = s.len().min(MAX_FIELD);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u16).to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..end]);
}

fn tag(body: &[u8], context: &str) -> [u8; TAG] {
    let mut h = Sha256::new();
    h.update(b"imgserv cursor\0");
    h.update((context.len() as u64).to_be_bytes());
    h.update(context.as_bytes());
    h.update(body);
    let digest = h.finalize();
    let mut out = [0; TAG];
    out.copy_from_slice(&digest[..TAG]);
    out
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], QueryError> {
        if self.0.len() < N {
            return Err(QueryError::BadCursor("cut short".into()));
        }
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        Ok(head.try_into().expect("length checked"))
    }

    fn string(&mut self) -> Result<String, QueryError> {
        let len = usize::from(u16::from_be_bytes(self.array()?));
        if self.0.len() < len || len > MAX_FIELD {
            return Err(QueryError::BadCursor("cut short".into()));
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        String::from_utf8(head.to_vec()).map_err(|_| QueryError::BadCursor("not UTF-8".into()))
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

fn unbase64url(text: &str) -> Option<Vec<u8>> {
    if text.len() > 4 * MAX_FIELD || text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.as_bytes().chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            let v = ALPHABET.iter().position(|&a| a == c)? as u32;
            n |= v << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
        // Canonical only: the bits below the last byte must be zero.
        let used = 8 * (chunk.len() - 1);
        if n & ((1 << (24 - used)) - 1) != 0 {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn positions() -> Vec<Position> {
        vec![
            Position::Newest {
                created: 1_700_000_000_123,
                id: "a".repeat(40),
            },
            Position::Newest {
                created: -5,
                id: String::new(),
            },
            Position::Name {
                key: "Café <script>\"x\" 日本".into(),
                id: "b".repeat(40),
            },
            Position::Rank {
                rank: -3.25e-7,
                seq: 99_999,
                floor: 98_000,
            },
            Position::Rank {
                rank: 0.0,
                seq: 1,
                floor: 0,
            },
            Position::Recent { seq: 97_999 },
        ]
    }

    #[test]
    fn round_trip() {
        for p in positions() {
            let token = encode(&p, "ctx");
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{token}"
            );
            assert_eq!(decode(&token, "ctx").unwrap(), p);
        }
    }

    #[test]
    fn base64url_matches_the_rfc_vectors() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg"),
            ("fo", "Zm8"),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg"),
            ("fooba", "Zm9vYmE"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64url(raw.as_bytes()), enc);
            assert_eq!(unbase64url(enc).unwrap(), raw.as_bytes());
        }
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
        assert!(unbase64url("Zh").is_none(), "non-zero trailing bits");
        assert!(unbase64url("Z").is_none());
        assert!(unbase64url("Zm9v+").is_none());
    }

    #[test]
    fn tampering_is_refused() {
        for p in positions() {
            let token = encode(&p, "ctx");
            // Another listing.
            assert!(matches!(
                decode(&token, "other"),
                Err(QueryError::BadCursor(_))
            ));
            // Every single-character change, and every truncation.
            for i in 0..token.len() {
                let mut t = token.clone().into_bytes();
                t[i] = if t[i] == b'A' { b'B' } else { b'A' };
                let t = String::from_utf8(t).unwrap();
                assert!(decode(&t, "ctx").is_err(), "{t}");
                assert!(decode(&token[..i], "ctx").is_err(), "cut at {i}");
            }
        }
        for junk in [
            "",
            "!!!!",
            "%00",
            "a b",
            &"A".repeat(10_000),
            "AAAAAAAAAAAAAAAA",
        ] {
            assert!(
                matches!(decode(junk, "ctx"), Err(QueryError::BadCursor(_))),
                "{junk}"
            );
        }
    }

    #[test]
    fn order_names() {
        for o in [Order::Newest, Order::Name] {
            assert_eq!(Order::parse(o.as_str()).unwrap(), o);
        }
        assert!(Order::parse("NAME").is_err());
    }
}
