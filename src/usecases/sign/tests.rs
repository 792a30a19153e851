use super::*;

const KEY_ID: &str = "ak_0123456789abcdef";
const SECRET: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
/// 2026-01-01T00:00:00Z.
const DATE: u64 = 1_767_225_600;

fn key(revoked: bool) -> KeyInfo {
    KeyInfo {
        user: "alice".into(),
        rights: Rights::READ | Rights::WRITE,
        secret: SECRET.as_bytes().to_vec(),
        revoked,
        expires: None,
        user_disabled: false,
    }
}

fn lookup(id: &str) -> Result<Option<KeyInfo>, SignError> {
    Ok((id == KEY_ID).then(|| key(false)))
}

/// A request signed at `DATE`, its `Content-Type` (if any) last among its headers: the
/// date, content hash and `Authorization` are headers 0, 1 and 2.
fn signed_as(
    version: Version,
    method: &str,
    path: &str,
    query: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Request {
    let mut req = Request {
        method: method.into(),
        path: path.into(),
        query: query.into(),
        headers: content_type
            .map(|t| vec![("content-type".to_string(), t.to_string())])
            .unwrap_or_default(),
        body: body.to_vec().into(),
        ..Request::default()
    };
    let mut headers = sign_request(version, KEY_ID, SECRET.as_bytes(), &req, DATE).to_vec();
    headers.append(&mut req.headers);
    req.headers = headers;
    req
}

/// Signed with the current version, without `Content-Type`.
fn signed(method: &str, path: &str, query: &str, body: &[u8]) -> Request {
    signed_as(Version::V2, method, path, query, None, body)
}

fn check_at(req: &Request, now: u64) -> Result<Verified, SignError> {
    verify(req, now, Duration::from_secs(300), lookup)
}

/// (version, method, path, query, Content-Type, body, string to sign, signature).
type Vector = (
    Version,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [u8],
    &'static str,
    &'static str,
);

/// The vectors of imgserv-signing(7), computed there by an independent Python client (a
/// test in tests/it/docs.rs runs it): 1 to 3 in version 1, 5 to 7 in version 2 (4 is the
/// URL below). Change them only with the page.
#[rustfmt::skip]
const VECTORS: [Vector; 6] = [
    (Version::V1, "POST", "/api/images", "category=%2Ftravel%2Fnorway", "", b"hello world",
     "IMGSERV-HMAC-SHA256\nPOST\n/api/images\ncategory=%2Ftravel%2Fnorway\n1767225600\nb94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9",
     "88f741d8565213da13310825278e0c23d0e920605d170db7583d3c517a1e6647"),
    (Version::V1, "PATCH", "/api/images/2aae6c35c94fcfb415dbe95f408b9ce91ee846ed/meta", "", "", b"{\"title\":\"Fjord\",\"draft\":null}",
     "IMGSERV-HMAC-SHA256\nPATCH\n/api/images/2aae6c35c94fcfb415dbe95f408b9ce91ee846ed/meta\n\n1767225600\n2fda396c8fc07594dea4fca9e31a94ee46852c8a43be6ed35c3b50d0b70181be",
     "b58ab73ed66cd65a6f51c22da392eaeb296f861bbc181a7796d1bfaf5d4574a1"),
    (Version::V1, "GET", "/api/images", "q=fjord+%c3%b8resund&per_page=10&page=2&category=/travel&q=sunset", "", b"",
     "IMGSERV-HMAC-SHA256\nGET\n/api/images\ncategory=%2Ftravel&page=2&per_page=10&q=fjord%20%C3%B8resund&q=sunset\n1767225600\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
     "d4d4b14114bc5ca3b84c542b7c3c67684b45066c4b45f8744852a85c9faa607c"),
    (Version::V2, "POST", "/api/images", "category=%2Ftravel%2Fnorway", "image/jpeg", b"hello world",
     "IMGSERV2-HMAC-SHA256\nPOST\n/api/images\ncategory=%2Ftravel%2Fnorway\n1767225600\nimage/jpeg\nb94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9",
     "804ecc477c8fa1c224c85651cdd6a9f15741acebd6499e85de276c8e74d76d16"),
    (Version::V2, "PATCH", "/api/images/2aae6c35c94fcfb415dbe95f408b9ce91ee846ed/meta", "", "application/json", b"{\"title\":\"Fjord\",\"draft\":null}",
     "IMGSERV2-HMAC-SHA256\nPATCH\n/api/images/2aae6c35c94fcfb415dbe95f408b9ce91ee846ed/meta\n\n1767225600\napplication/json\n2fda396c8fc07594dea4fca9e31a94ee46852c8a43be6ed35c3b50d0b70181be",
     "cccb87959e72c148246f0ea189cbaf7db1f20097f77e2dd8e6a5d495d59be883"),
    (Version::V2, "DELETE", "/api/images/2aae6c35c94fcfb415dbe95f408b9ce91ee846ed", "", "", b"",
     "IMGSERV2-HMAC-SHA256\nDELETE\n/api/images/2aae6c35c94fcfb415dbe95f408b9ce91ee846ed\n\n1767225600\n\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
     "01cf2f75d5bbe3405138ef48193eb9a283a62bbf7f61d17fa46db12c493526b8"),
];
const URL_QUERY: &str = "src=photos%2Fa+b.jpg&height=600&width=800&exp=1767229200";
const URL_STS: &str = "IMGSERV-URL\n/\nexp=1767229200&height=600&src=photos%2Fa%20b.jpg&width=800";
const URL_SIG: &str =
    "ak_0123456789abcdef.715b2704546fa477119a2858d257f07960ff4f3a53a0481ccc7aeabc1e9a0ee0";

#[test]
fn vectors() {
    for (version, method, path, query, content_type, body, sts, sig) in VECTORS {
        let content = content_sha256(body);
        let date = DATE.to_string();
        let got = string_to_sign(version, method, path, query, &date, content_type, &content);
        assert_eq!(got, sts);
        assert_eq!(signature(SECRET.as_bytes(), &got), sig);
        let content_type = Some(content_type).filter(|t| !t.is_empty());
        let req = signed_as(version, method, path, query, content_type, body);
        assert_eq!(
            req.headers[2].1,
            format!("{} Credential={KEY_ID}, Signature={sig}", version.scheme())
        );
        assert!(check_at(&req, DATE).is_ok());
    }
    assert_eq!(url_string_to_sign("", URL_QUERY), URL_STS);
    assert_eq!(
        sign_url(KEY_ID, SECRET.as_bytes(), "", URL_QUERY),
        format!("{URL_QUERY}&sig={URL_SIG}")
    );
}

#[test]
fn the_man_page_has_the_vectors() {
    let page = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/man/imgserv-signing.7"
    ));
    for (_, _, _, _, _, _, sts, sig) in VECTORS {
        assert!(page.contains(sig), "man/imgserv-signing.7 lacks {sig}");
        for line in sts.lines().filter(|l| !l.is_empty()) {
            let roff = line.replace('-', "\\-");
            assert!(page.contains(&roff), "man/imgserv-signing.7 lacks {line}");
        }
    }
    assert!(page.contains(URL_SIG));
    assert!(page.contains(SECRET) && page.contains(KEY_ID));
}

#[test]
fn canonical_forms() {
    assert_eq!(canonical_path(""), "/");
    assert_eq!(canonical_path("/a b/ø~x+y"), "/a%20b/%C3%B8~x%2By");
    #[rustfmt::skip]
    let cases = [
        ("",                    ""),
        ("&&",                  ""),
        ("b=2&a=1",             "a=1&b=2"),
        ("a=2&a=10&a=1",        "a=1&a=10&a=2"),
        ("flag&x=",             "flag=&x="),
        ("x=a=b",               "x=a%3Db"),
        ("x=%2f%2F/",           "x=%2F%2F%2F"),
        ("x=a+b%20c%2Bd",       "x=a%20b%20c%2Bd"),
        ("x=%7e%41",            "x=~A"),
        ("x=%zz%",              "x=%25zz%25"),
        ("x=%ff",               "x=%FF"),
        ("%78=1",               "x=1"),
    ];
    for (raw, want) in cases {
        assert_eq!(canonical_query(raw, &[]), want, "{raw}");
    }
    assert_eq!(canonical_query("sig=1&%73ig=2&a=1", &[SIG_PARAM]), "a=1");
}

#[test]
fn query_order_and_encoding_do_not_matter() {
    let req = signed("GET", "/api/images", "page=2&q=a+b", b"");
    for query in ["q=a%20b&page=2", "page=2&q=a%20b&", "q=%61+b&page=%32"] {
        let moved = Request {
            query: query.into(),
            ..req.clone()
        };
        assert!(check_at(&moved, DATE).is_ok(), "{query}");
    }
}

#[test]
fn tampering_is_refused_in_both_versions() {
    for version in [Version::V1, Version::V2] {
        tampering_is_refused(version);
    }
}

fn tampering_is_refused(version: Version) {
    let req = signed_as(version, "POST", "/api/images", "category=a", None, b"bytes");
    let sent = req.headers[2].1.split("Signature=").nth(1).unwrap();
    assert_eq!(
        check_at(&req, DATE).unwrap(),
        Verified {
            key_id: KEY_ID.into(),
            user: "alice".into(),
            rights: Rights::READ | Rights::WRITE,
            signature: unhex32(sent).unwrap(),
        }
    );
    let tampered: [(&str, Request); 6] = [
        (
            "method",
            Request {
                method: "PUT".into(),
                ..req.clone()
            },
        ),
        (
            "path",
            Request {
                path: "/api/images/x".into(),
                ..req.clone()
            },
        ),
        (
            "query",
            Request {
                query: "category=b".into(),
                ..req.clone()
            },
        ),
        (
            "extra param",
            Request {
                query: "category=a&page=2".into(),
                ..req.clone()
            },
        ),
        ("date", {
            let mut r = req.clone();
            r.headers[0].1 = (DATE + 1).to_string();
            r
        }),
        ("content header and body", {
            let mut r = req.clone();
            r.body = b"other".to_vec().into();
            r.headers[1].1 = content_sha256(b"other");
            r
        }),
    ];
    for (what, r) in tampered {
        assert_eq!(
            check_at(&r, DATE),
            Err(SignError::BadSignature),
            "{version:?}: {what}"
        );
    }
    let body_only = Request {
        body: b"other".to_vec().into(),
        ..req.clone()
    };
    assert_eq!(check_at(&body_only, DATE), Err(SignError::BodyMismatch));
    let mut flipped = req.clone();
    let auth = &mut flipped.headers[2].1;
    let last = if auth.ends_with('0') { "1" } else { "0" };
    auth.replace_range(auth.len() - 1.., last);
    assert_eq!(check_at(&flipped, DATE), Err(SignError::BadSignature));
}

/// With a `Content-Type` header set to `value` (`None`: removed).
fn with_type(req: &Request, value: Option<&str>) -> Request {
    let mut r = req.clone();
    r.headers.retain(|(n, _)| n != "content-type");
    if let Some(v) = value {
        r.headers.push(("content-type".into(), v.into()));
    }
    r
}

#[test]
fn version_2_signs_the_content_type_and_version_1_does_not() {
    let form = "multipart/form-data; boundary=B0undary";
    let v2 = signed_as(
        Version::V2,
        "POST",
        "/api/images",
        "",
        Some(form),
        b"--B0undary--",
    );
    assert!(check_at(&v2, DATE).is_ok());
    // Surrounding spaces are not signed; anything else in the value is.
    assert!(check_at(&with_type(&v2, Some(&format!(" {form}\t"))), DATE).is_ok());
    for changed in [
        Some("multipart/form-data; boundary=other"),
        Some("image/jpeg"),
        Some(""),
        None,
    ] {
        assert_eq!(
            check_at(&with_type(&v2, changed), DATE),
            Err(SignError::BadSignature),
            "{changed:?}"
        );
    }
    // Signed without one, a Content-Type added later breaks it; empty is the same as none.
    let bare = signed_as(Version::V2, "DELETE", "/api/images/x", "", None, b"");
    assert!(check_at(&with_type(&bare, Some("")), DATE).is_ok());
    assert_eq!(
        check_at(&with_type(&bare, Some("text/plain")), DATE),
        Err(SignError::BadSignature)
    );
    // A control character could forge a line of the string to sign.
    assert!(matches!(
        check_at(&with_type(&v2, Some("text/plain\n1767225600")), DATE),
        Err(SignError::Malformed(_))
    ));

    // Version 1 still verifies, and (its known weakness) ignores Content-Type.
    let v1 = signed_as(
        Version::V1,
        "POST",
        "/api/images",
        "",
        Some(form),
        b"--B0undary--",
    );
    assert!(check_at(&v1, DATE).is_ok());
    assert!(check_at(&with_type(&v1, Some("image/jpeg")), DATE).is_ok());

    // The scheme name is signed: a signature of one version does not pass as the other.
    for (req, other) in [(&v1, SCHEME_V2), (&v2, SCHEME)] {
        let mut r = req.clone();
        let sig = r.headers[2].1.split_once(' ').unwrap().1.to_string();
        r.headers[2].1 = format!("{other} {sig}");
        assert_eq!(check_at(&r, DATE), Err(SignError::BadSignature), "{other}");
    }
    // Scheme names are compared without regard to case.
    let mut lower = v2.clone();
    lower.headers[2].1 = lower.headers[2]
        .1
        .replacen(SCHEME_V2, "imgserv2-hmac-sha256", 1);
    assert!(check_at(&lower, DATE).is_ok());
}

#[test]
fn clock_skew_both_ways() {
    let req = signed("DELETE", "/api/images/x", "", b"");
    assert!(check_at(&req, DATE + 300).is_ok());
    assert!(check_at(&req, DATE - 300).is_ok());
    assert_eq!(check_at(&req, DATE + 301), Err(SignError::Expired));
    assert_eq!(check_at(&req, DATE - 301), Err(SignError::Expired));
}

fn wrong_secret() -> KeyInfo {
    KeyInfo {
        secret: b"another secret".to_vec(),
        ..key(false)
    }
}

#[test]
fn keys_unknown_revoked_expired_disabled_wrong() {
    let req = signed("POST", "/api/images", "", b"x");
    let unknown = verify(&req, DATE, Duration::from_secs(300), |_| {
        Ok::<_, SignError>(None)
    });
    assert_eq!(unknown, Err(SignError::UnknownKey(KEY_ID.into())));
    let revoked = verify(&req, DATE, Duration::from_secs(300), |_| {
        Ok::<_, SignError>(Some(key(true)))
    });
    assert_eq!(revoked, Err(SignError::RevokedKey(KEY_ID.into())));
    // A revoked key with the wrong secret learns nothing about revocation.
    let wrong = KeyInfo {
        secret: b"another secret".to_vec(),
        ..key(true)
    };
    let r = verify(&req, DATE, Duration::from_secs(300), |_| {
        Ok::<_, SignError>(Some(wrong))
    });
    assert_eq!(r, Err(SignError::BadSignature));
    // An expired key, and a disabled user's key, the same way.
    let at = |expires| {
        verify(&req, DATE, Duration::from_secs(300), |_| {
            Ok::<_, SignError>(Some(KeyInfo {
                expires: Some(expires),
                ..key(false)
            }))
        })
    };
    assert_eq!(at(DATE), Err(SignError::ExpiredKey(KEY_ID.into())));
    assert!(at(DATE + 1).is_ok());
    let disabled = KeyInfo {
        user_disabled: true,
        ..key(false)
    };
    let r = verify(&req, DATE, Duration::from_secs(300), |_| {
        Ok::<_, SignError>(Some(disabled.clone()))
    });
    assert_eq!(r, Err(SignError::DisabledUser(KEY_ID.into())));
    for hidden in [
        KeyInfo {
            expires: Some(DATE),
            ..wrong_secret()
        },
        KeyInfo {
            user_disabled: true,
            ..wrong_secret()
        },
    ] {
        let r = verify(&req, DATE, Duration::from_secs(300), |_| {
            Ok::<_, SignError>(Some(hidden))
        });
        assert_eq!(r, Err(SignError::BadSignature));
    }
    // The URL form too.
    let url = sign_url(KEY_ID, SECRET.as_bytes(), "/x.jpg", "w=1");
    let expired = verify_url("/x.jpg", &url, DATE, |_| {
        Ok::<_, SignError>(Some(KeyInfo {
            expires: Some(DATE - 10),
            ..key(false)
        }))
    });
    assert_eq!(expired, Err(SignError::ExpiredKey(KEY_ID.into())));
    // The lookup's own error passes through.
    let busy = verify(&req, DATE, Duration::from_secs(300), |_| {
        Err::<Option<KeyInfo>, _>(SignError::Malformed("db".into()))
    });
    assert_eq!(busy, Err(SignError::Malformed("db".into())));
}

#[test]
fn unsigned_and_malformed() {
    let plain = Request::get("/api/images", "");
    assert_eq!(check_at(&plain, DATE), Err(SignError::Unsigned));
    // The parsing below is the same for both versions.
    let req = signed_as(Version::V1, "POST", "/api/images", "", None, b"x");
    let with = |i: usize, v: &str| {
        let mut r = req.clone();
        r.headers[i].1 = v.into();
        r
    };
    assert_eq!(
        check_at(&with(2, "Basic dXNlcjpwYXNz"), DATE),
        Err(SignError::Unsigned)
    );
    let sig = req.headers[2]
        .1
        .split("Signature=")
        .nth(1)
        .unwrap()
        .to_string();
    for auth in [
        "IMGSERV-HMAC-SHA256".to_string(),
        format!("IMGSERV-HMAC-SHA256 Signature={sig}"),
        format!("IMGSERV-HMAC-SHA256 Credential=, Signature={sig}"),
        format!("IMGSERV-HMAC-SHA256 Credential={KEY_ID}"),
        format!(
            "IMGSERV-HMAC-SHA256 Credential={KEY_ID}, Signature={}",
            &sig[..63]
        ),
        format!(
            "IMGSERV-HMAC-SHA256 Credential={KEY_ID}, Signature={}g",
            &sig[..63]
        ),
        format!("IMGSERV-HMAC-SHA256 Credential={KEY_ID}, Signature={sig}, Signature={sig}"),
        format!("IMGSERV-HMAC-SHA256 Credential={KEY_ID}, Signature={sig}, Region=x"),
        format!("IMGSERV-HMAC-SHA256 Credential={KEY_ID} Signature={sig}"),
    ] {
        let r = check_at(&with(2, &auth), DATE);
        assert!(matches!(r, Err(SignError::Malformed(_))), "{auth}: {r:?}");
    }
    // Parameter order and spacing are free.
    let swapped = format!("IMGSERV-HMAC-SHA256 Signature={sig} ,Credential={KEY_ID}");
    assert!(check_at(&with(2, &swapped), DATE).is_ok());
    for date in [
        "",
        "-1767225600",
        "1767225600.0",
        " 1767225600",
        "1e9",
        "9999999999999",
    ] {
        let r = check_at(&with(0, date), DATE);
        assert!(
            matches!(r, Err(SignError::Malformed(_))),
            "date {date:?}: {r:?}"
        );
    }
    let upper = req.headers[1].1.to_ascii_uppercase();
    assert!(matches!(
        check_at(&with(1, &upper), DATE),
        Err(SignError::Malformed(_))
    ));
    let mut twice = req.clone();
    twice.headers.push((DATE_HEADER.into(), DATE.to_string()));
    assert!(matches!(
        check_at(&twice, DATE),
        Err(SignError::Malformed(_))
    ));
    let mut missing = req.clone();
    missing.headers.remove(1);
    assert!(matches!(
        check_at(&missing, DATE),
        Err(SignError::Malformed(_))
    ));
}

#[test]
fn rights_are_checked_by_the_caller() {
    let v = check_at(&signed("GET", "/", "", b""), DATE).unwrap();
    assert!(v.require(Rights::READ | Rights::WRITE).is_ok());
    assert_eq!(
        v.require(Rights::DELETE),
        Err(SignError::InsufficientRights {
            needed: Rights::DELETE
        })
    );
}

fn url_check(path: &str, query: &str, now: u64) -> Result<Verified, SignError> {
    verify_url(path, query, now, lookup)
}

#[test]
fn signed_urls() {
    let q = sign_url(
        KEY_ID,
        SECRET.as_bytes(),
        "",
        "src=a.jpg&width=800&height=600",
    );
    assert!(url_check("", &q, DATE).is_ok());
    assert!(url_check("/", &q, DATE).is_ok(), "empty path is /");
    // Reordered and re-encoded, still valid; an old sig is replaced when signing again.
    let parts: Vec<&str> = q.split('&').rev().collect();
    assert!(url_check("", &parts.join("&"), DATE).is_ok());
    let again = sign_url(KEY_ID, SECRET.as_bytes(), "", &q);
    assert_eq!(again, q);
    for (path, query) in [
        ("", q.replace("width=800", "width=801")),
        ("", q.replace("src=a.jpg", "src=b.jpg")),
        ("", format!("{q}&extra=1")),
        ("/other", q.clone()),
    ] {
        assert_eq!(
            url_check(path, &query, DATE),
            Err(SignError::BadSignature),
            "{query}"
        );
    }
    let missing = "src=a.jpg&width=800&height=600";
    assert_eq!(url_check("", missing, DATE), Err(SignError::Unsigned));
    for bad in [
        format!("{missing}&sig=nodot"),
        format!("{missing}&sig=.{}", "0".repeat(64)),
        format!("{missing}&sig={KEY_ID}.abc"),
        format!("{q}&sig={KEY_ID}.{}", "0".repeat(64)),
        format!("{q}&exp=1&exp=2"),
    ] {
        assert!(
            matches!(url_check("", &bad, DATE), Err(SignError::Malformed(_))),
            "{bad}"
        );
    }
    let other = format!("{missing}&sig=ak_ffffffffffffffff.{}", "0".repeat(64));
    assert_eq!(
        url_check("", &other, DATE),
        Err(SignError::UnknownKey("ak_ffffffffffffffff".into()))
    );
}

#[test]
fn signed_urls_expire() {
    let q = sign_url(KEY_ID, SECRET.as_bytes(), "", URL_QUERY);
    assert!(url_check("", &q, 1_767_229_200).is_ok(), "valid up to exp");
    assert_eq!(url_check("", &q, 1_767_229_201), Err(SignError::Expired));
    // exp is signed: extending it breaks the signature.
    let longer = q.replace("exp=1767229200", "exp=1767239200");
    assert_eq!(url_check("", &longer, DATE), Err(SignError::BadSignature));
    let junk = q.replace("exp=1767229200", "exp=soon");
    assert!(matches!(
        url_check("", &junk, DATE),
        Err(SignError::Malformed(_))
    ));
}

#[test]
fn whole_urls_for_the_admin_tool() {
    let href = "https://img.example.org/imgserv.cgi?src=photos%2Fa+b.jpg&height=600&width=800#top";
    let signed = sign_href(
        href,
        "/imgserv.cgi/",
        KEY_ID,
        SECRET.as_bytes(),
        Some(1_767_229_200),
    )
    .unwrap();
    assert_eq!(
        signed,
        format!("https://img.example.org/imgserv.cgi?{URL_QUERY}&sig={URL_SIG}")
    );
    let (_, query) = signed.split_once('?').unwrap();
    assert!(url_check("", query, DATE).is_ok());
    // Below the mount point, the path is signed; a path elsewhere is refused.
    let deep = sign_href(
        "/img/cache/a%20b.jpg?w=1",
        "/img",
        KEY_ID,
        SECRET.as_bytes(),
        None,
    )
    .unwrap();
    let (path, query) = deep.split_once('?').unwrap();
    assert_eq!(path, "/img/cache/a%20b.jpg");
    assert!(url_check("/cache/a b.jpg", query, DATE).is_ok());
    assert!(sign_href("/other/x", "/img", KEY_ID, SECRET.as_bytes(), None).is_err());
    assert!(sign_href("/imgx", "/img", KEY_ID, SECRET.as_bytes(), None).is_err());
}

#[test]
fn a_catalog_key_verifies_with_its_secret_and_rights_until_revoked() {
    let t = tempfile::tempdir().unwrap();
    let mut c = crate::io::catalog::Catalog::open(&t.path().join("catalog.sqlite")).unwrap();
    c.add_user("alice").unwrap();
    let k = c.add_key("alice", Rights::READ | Rights::DELETE).unwrap();
    let info = KeyInfo::from(c.key(&k.id).unwrap().unwrap());
    assert_eq!(
        (info.user.as_str(), info.rights, info.revoked),
        ("alice", Rights::READ | Rights::DELETE, false)
    );
    assert_eq!(info.secret, k.secret.expose().as_bytes());
    c.revoke(&k.id).unwrap();
    let info: KeyInfo = c.key(&k.id).unwrap().unwrap().into();
    assert!(info.revoked && info.secret == k.secret.expose().as_bytes());
    // An expiry in milliseconds, in seconds here; the user's disabled flag follows.
    let k = c
        .add_key_expiring("alice", Rights::READ, Some(1_767_225_600_999))
        .unwrap();
    let info = KeyInfo::from(c.key(&k.id).unwrap().unwrap());
    assert_eq!(
        (info.expires, info.user_disabled),
        (Some(1_767_225_600), false)
    );
    c.set_disabled("alice", true).unwrap();
    assert!(KeyInfo::from(c.key(&k.id).unwrap().unwrap()).user_disabled);
}

#[test]
fn keys_of_a_catalog_made_before_migrations_keep_exactly_their_rights() {
    use crate::io::catalog::testing::made_before_migrations;
    let all = [Rights::READ, Rights::WRITE, Rights::DELETE, Rights::ADMIN];
    for version in [1, 2] {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("catalog.sqlite");
        let keys = made_before_migrations(&path, version);
        let c = crate::io::catalog::Catalog::open(&path).unwrap();
        for k in &keys {
            let mut req = Request {
                method: "GET".into(),
                path: "/api/images".into(),
                ..Request::default()
            };
            req.headers = sign_request(Version::V2, k.id, k.secret.as_bytes(), &req, DATE).to_vec();
            let verified = verify(&req, DATE, Duration::from_secs(300), |id| {
                Ok::<_, SignError>(c.key(id).unwrap().map(KeyInfo::from))
            });
            if k.revoked {
                assert_eq!(verified, Err(SignError::RevokedKey(k.id.into())));
                continue;
            }
            let verified = verified.unwrap();
            assert_eq!(verified.user, k.user, "v{version} {}", k.id);
            for right in all {
                assert_eq!(
                    verified.require(right).is_ok(),
                    k.rights.contains(right),
                    "v{version} {} {right}",
                    k.id
                );
            }
        }
    }
}
