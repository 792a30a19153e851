//! The dashboard's content pages through CGI runs of the built binary with plain HTTP
//! requests and no JavaScript, as a browser without script (or a script) uses them: upload
//! several files (one refused), browse, open, edit metadata, move, search, delete — each step
//! checked in the catalog and on disk; a user without the right sees no controls and a forged
//! request changes nothing (`403`); CSRF missing or wrong (`403`); markup in metadata,
//! category and file names shown as text on every page; and one user's page never carrying
//! another's state.

use std::path::{Path, PathBuf};

use imgserv::domain::original::OriginalId;
use imgserv::io::catalog::{Catalog, Image};
use serde_json::Value;

use crate::api::load;
use crate::pages::{cookie_of, csrf_of, form, login, page};
use crate::support::{Cgi, CgiResponse, Site, fixture_bytes, imgserv_admin};

const BOUNDARY: &str = "c0ntentB0undary";

/// A site with bob (editor), carl (viewer) and ann (editor), each with password `USER-pw`.
fn site() -> Site {
    let site = Site::with_config("[dashboard]\nper_page = 2\n");
    for (user, role) in [("bob", "editor"), ("carl", "viewer"), ("ann", "editor")] {
        let args = ["user", "add", user, "--password-stdin", "--role", role];
        let out = imgserv_admin(&site, &args, format!("{user}-pw\n").as_bytes());
        assert!(out.status.success(), "{out:?}");
    }
    site
}

/// A logged-in user's cookie and CSRF token.
fn session(site: &Site, user: &str) -> (String, String) {
    let r = login(site, user, &format!("{user}-pw"), "/admin/");
    assert_eq!(r.status, 303, "{}", r.body_text());
    let cookie = cookie_of(&r);
    let home = get(site, "/admin/", &cookie);
    (cookie.clone(), csrf_of(&home.body_text()))
}

fn get(site: &Site, path: &str, cookie: &str) -> CgiResponse {
    page(site, "GET", path, Some(cookie), None, &[])
}

fn post(site: &Site, path: &str, cookie: &str, fields: &[(&str, &str)]) -> CgiResponse {
    page(site, "POST", path, Some(cookie), Some(&form(fields)), &[])
}

/// The upload form as multipart: fields, then files.
fn upload(
    site: &Site,
    cookie: &str,
    fields: &[(&str, &str)],
    files: &[(&str, Vec<u8>)],
) -> CgiResponse {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    for (name, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    Cgi::new(site)
        .method("POST")
        .path_info("/admin/upload")
        .header("cookie", cookie)
        .body(&format!("multipart/form-data; boundary={BOUNDARY}"), &body)
        .run()
}

/// `user`'s session (cookie, CSRF token) after they uploaded the rocket photo into `/travel`
/// through the page, with `fields` besides.
fn uploaded(site: &Site, user: &str, fields: &[(&str, &str)]) -> (String, String) {
    let (cookie, token) = session(site, user);
    let mut all = vec![("csrf_token", token.as_str()), ("category", "/travel")];
    all.extend_from_slice(fields);
    let photo = ("rocket.jpg", fixture_bytes("photo-rocket-640x427.jpg"));
    let r = upload(site, &cookie, &all, &[photo]);
    assert_eq!(r.status, 200, "{}", r.body_text());
    (cookie, token)
}

pub(crate) fn catalog(site: &Site) -> Catalog {
    Catalog::open(&load(site).state.catalog_path()).unwrap()
}

pub(crate) fn images(site: &Site) -> Vec<Image> {
    let c = catalog(site);
    let mut out: Vec<Image> = c
        .originals()
        .unwrap()
        .into_iter()
        .map(|(id, _)| c.get(&id).unwrap().unwrap())
        .collect();
    out.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    out
}

pub(crate) fn title(image: &Image) -> &str {
    image
        .meta
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The store's file of an original, if it is there.
pub(crate) fn stored(site: &Site, id: &OriginalId) -> Option<PathBuf> {
    fn walk(dir: &Path, name: &str) -> Option<PathBuf> {
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if let Some(p) = walk(&path, name) {
                    return Some(p);
                }
            } else if path
                .file_stem()
                .is_some_and(|s| s.to_string_lossy() == name)
            {
                return Some(path);
            }
        }
        None
    }
    walk(&site.store(), id.as_str())
}

#[test]
fn upload_browse_edit_move_search_and_delete_without_javascript() {
    let site = site();
    let (bob, token) = session(&site, "bob");

    // The upload form, then three files: two images and a text file named .jpg.
    let form_page = get(&site, "/admin/upload", &bob);
    assert_eq!(form_page.status, 200);
    let html = form_page.body_text();
    for want in [
        "enctype=\"multipart/form-data\"",
        "name=\"file\"",
        "multiple",
    ] {
        assert!(html.contains(want), "{want} in {html}");
    }
    let r = upload(
        &site,
        &bob,
        &[
            ("csrf_token", &token),
            ("category", "/travel"),
            ("meta.title", "Fjord"),
        ],
        &[
            ("rocket.jpg", fixture_bytes("photo-rocket-640x427.jpg")),
            ("cat.png", fixture_bytes("photo-chelsea-cat-451x300.png")),
            ("notes.jpg", fixture_bytes("bad-text-named.jpg")),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    let html = r.body_text();
    assert!(html.contains("2 new, 0 already there, 1 refused"), "{html}");
    assert!(
        html.contains("<strong>notes.jpg</strong>: refused: "),
        "{html}"
    );
    let rows = images(&site);
    assert_eq!(rows.len(), 2);
    for image in &rows {
        assert_eq!(image.category, "/travel");
        assert_eq!(title(image), "Fjord");
        assert_eq!(image.owner.as_deref(), Some("bob"));
        assert!(stored(&site, &image.id).is_some(), "{} stored", image.id);
    }
    // The same file again is a duplicate; nothing changes.
    let again = upload(
        &site,
        &bob,
        &[("csrf_token", &token), ("category", "/elsewhere")],
        &[("rocket.jpg", fixture_bytes("photo-rocket-640x427.jpg"))],
    );
    assert_eq!(again.status, 200);
    assert!(again.body_text().contains("already there"));
    assert_eq!(images(&site).len(), 2);

    // Browse: the tree with counts, two cards a page, a cursor to the next.
    let browse = get(&site, "/admin/browse?category=/travel", &bob);
    assert_eq!(browse.status, 200, "{}", browse.body_text());
    let html = browse.body_text();
    assert!(
        html.contains(">travel</a> <span class=\"count\">2</span>"),
        "{html}"
    );
    assert_eq!(html.matches("class=\"card\"").count(), 2, "{html}");
    assert!(
        html.contains("name=\"id\""),
        "an editor gets checkboxes: {html}"
    );
    let by_name = get(&site, "/admin/browse?category=/travel&order=name", &bob);
    assert_eq!(by_name.status, 200);

    // The image page: facts, embed URLs, Edit and Delete for an editor.
    let id = rows[0].id.clone();
    let image = get(&site, &format!("/admin/image/{id}"), &bob);
    assert_eq!(image.status, 200);
    let html = image.body_text();
    for want in [
        "<h1>Fjord</h1>",
        id.as_str(),
        rows[0].mime.as_str(),
        "/edit\">Edit",
        "/delete\">Delete",
        "Thumbnail (",
    ] {
        assert!(html.contains(want), "{want} in {html}");
    }

    // Edit: change the title, add a key, move it to /travel/norway.
    let edit = get(&site, &format!("/admin/image/{id}/edit"), &bob);
    assert_eq!(edit.status, 200);
    let edit_html = edit.body_text();
    let updated = rows[0].updated.to_string();
    let r = post(
        &site,
        &format!("/admin/image/{id}/edit"),
        &bob,
        &[
            ("csrf_token", &token),
            ("updated", &updated),
            ("meta.title", "Geiranger fjord"),
            ("new_key", "photographer"),
            ("new_value", "Ana"),
            ("category", "/travel/norway"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body_text());
    assert!(edit_html.contains("name=\"meta.title\""), "{edit_html}");
    let changed = catalog(&site).get(&id).unwrap().unwrap();
    assert_eq!(title(&changed), "Geiranger fjord");
    assert_eq!(changed.meta["photographer"], "Ana");
    assert_eq!(changed.category, "/travel/norway");
    // The same form again, now stale: 409 and nothing changes.
    let stale = post(
        &site,
        &format!("/admin/image/{id}/edit"),
        &bob,
        &[
            ("csrf_token", &token),
            ("updated", &updated),
            ("meta.title", "Old"),
            ("category", "/travel"),
        ],
    );
    assert_eq!(stale.status, 409, "{}", stale.body_text());
    assert_eq!(
        title(&catalog(&site).get(&id).unwrap().unwrap()),
        "Geiranger fjord"
    );

    // Search finds it by the new word, in its category, the word marked.
    let found = get(&site, "/admin/search?q=geiranger&category=/travel", &bob);
    assert_eq!(found.status, 200);
    let html = found.body_text();
    assert!(html.contains("<mark>Geiranger</mark>"), "{html}");
    assert!(html.contains(&format!("image/{id}")), "{html}");
    let none = get(&site, "/admin/search?q=geiranger&category=/elsewhere", &bob);
    assert!(none.body_text().contains("No images match"));

    // Move both (the Browse page's form) to /archive.
    let ids: Vec<String> = rows.iter().map(|i| i.id.as_str().to_string()).collect();
    let r = post(
        &site,
        "/admin/move",
        &bob,
        &[
            ("csrf_token", &token),
            ("id", &ids[0]),
            ("id", &ids[1]),
            ("category", "/archive"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body_text());
    assert!(r.header("location").unwrap().contains("moved=2"));
    assert!(images(&site).iter().all(|i| i.category == "/archive"));

    // Delete: a confirmation page listing what goes, then the delete.
    let confirm = get(&site, &format!("/admin/image/{id}/delete"), &bob);
    assert_eq!(confirm.status, 200);
    let html = confirm.body_text();
    assert!(
        html.contains("the original") && html.contains(id.as_str()),
        "{html}"
    );
    let file = stored(&site, &id).unwrap();
    let r = post(
        &site,
        &format!("/admin/image/{id}/delete"),
        &bob,
        &[("csrf_token", &token)],
    );
    assert_eq!(r.status, 303, "{}", r.body_text());
    assert!(catalog(&site).get(&id).unwrap().is_none());
    assert!(!file.exists(), "{} removed", file.display());
    assert_eq!(get(&site, &format!("/admin/image/{id}"), &bob).status, 404);
    assert_eq!(images(&site).len(), 1);
}

#[test]
fn without_the_right_there_are_no_controls_and_forging_changes_nothing() {
    let site = site();
    uploaded(&site, "bob", &[]);
    let before = images(&site);
    let id = before[0].id.clone();
    let file = stored(&site, &id).unwrap();

    // carl may view: no Edit, no Delete, no checkboxes.
    let (carl, carl_token) = session(&site, "carl");
    let html = get(&site, &format!("/admin/image/{id}"), &carl).body_text();
    assert!(
        !html.contains("/edit\"") && !html.contains("/delete\""),
        "{html}"
    );
    let html = get(&site, "/admin/browse?category=/travel", &carl).body_text();
    assert!(html.contains("class=\"card\""), "{html}");
    assert!(!html.contains("name=\"id\""), "{html}");
    assert_eq!(
        get(&site, &format!("/admin/image/{id}/edit"), &carl).status,
        403
    );

    // Forged requests with carl's own valid token: 403, nothing changed.
    let updated = before[0].updated.to_string();
    let forged = [
        (
            format!("/admin/image/{id}/edit"),
            vec![
                ("csrf_token", carl_token.as_str()),
                ("updated", updated.as_str()),
                ("meta.title", "Mine now"),
                ("category", "/carl"),
            ],
        ),
        (
            format!("/admin/image/{id}/delete"),
            vec![("csrf_token", carl_token.as_str())],
        ),
        (
            "/admin/move".to_string(),
            vec![
                ("csrf_token", carl_token.as_str()),
                ("id", id.as_str()),
                ("category", "/carl"),
            ],
        ),
    ];
    for (path, fields) in &forged {
        let r = post(&site, path, &carl, fields);
        assert_eq!(r.status, 403, "{path}: {}", r.body_text());
    }
    let r = upload(
        &site,
        &carl,
        &[("csrf_token", &carl_token), ("category", "/travel")],
        &[("cat.png", fixture_bytes("photo-chelsea-cat-451x300.png"))],
    );
    assert_eq!(r.status, 403, "{}", r.body_text());
    assert!(r.body_text().contains("refused"));
    assert_eq!(images(&site), before);
    assert!(file.exists());
}

#[test]
fn a_missing_or_wrong_csrf_token_is_refused_and_changes_nothing() {
    let site = site();
    let (bob, _) = uploaded(&site, "bob", &[]);
    let before = images(&site);
    let id = before[0].id.as_str().to_string();
    let updated = before[0].updated.to_string();
    for bad in [None, Some("0000"), Some("")] {
        let with = |mut fields: Vec<(&'static str, String)>| {
            if let Some(t) = bad {
                fields.push(("csrf_token", t.to_string()));
            }
            fields
        };
        let cases = [
            (
                format!("/admin/image/{id}/edit"),
                with(vec![
                    ("updated", updated.clone()),
                    ("meta.title", "x".into()),
                    ("category", "/x".into()),
                ]),
            ),
            (format!("/admin/image/{id}/delete"), with(vec![])),
            (
                "/admin/move".into(),
                with(vec![("id", id.clone()), ("category", "/x".into())]),
            ),
        ];
        for (path, fields) in &cases {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = post(&site, path, &bob, &fields);
            assert_eq!(r.status, 403, "{path} {bad:?}: {}", r.body_text());
        }
        let mut fields = vec![("category", "/travel")];
        if let Some(t) = bad {
            fields.push(("csrf_token", t));
        }
        let r = upload(
            &site,
            &bob,
            &fields,
            &[("cat.png", fixture_bytes("photo-chelsea-cat-451x300.png"))],
        );
        assert_eq!(r.status, 403, "upload {bad:?}: {}", r.body_text());
    }
    assert_eq!(images(&site), before);
}

/// Markup and script in metadata, category and file names: text on every page.
#[test]
fn markup_is_shown_as_text_on_every_page() {
    let site = site();
    let (bob, token) = session(&site, "bob");
    let payloads = [
        "<script>alert(1)</script>",
        "\"><img src=x onerror=alert(2)>",
        "' onmouseover='alert(3)",
        "</textarea><svg onload=alert(4)>",
        "javascript:alert(5)",
    ];
    let title = payloads.join(" ");
    let category = "/x<script>alert(6)<\\/script>";
    // A category with markup in it (the backslash is refused; the rest is a name like any).
    let bad = upload(
        &site,
        &bob,
        &[("csrf_token", &token), ("category", category)],
        &[("a.jpg", fixture_bytes("photo-rocket-640x427.jpg"))],
    );
    assert!(bad.body_text().contains("refused"), "{}", bad.body_text());
    let category = "/x<b onclick=alert(6)>\"y";
    let r = upload(
        &site,
        &bob,
        &[
            ("csrf_token", &token),
            ("category", category),
            ("meta.title", &title),
            ("meta.note", payloads[1]),
        ],
        &[
            (
                "<img src=x onerror=alert(7)>.jpg",
                fixture_bytes("photo-rocket-640x427.jpg"),
            ),
            (
                "<script>alert(8)</script>.txt",
                b"<script>alert(8)</script>".to_vec(),
            ),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body_text());
    let id = images(&site)[0].id.clone();
    let q = "alert";
    let pages = [
        ("upload outcome", r),
        ("browse", get(&site, "/admin/browse", &bob)),
        (
            "browse category",
            get(
                &site,
                &format!("/admin/browse?category={}", crate::pages::enc(category)),
                &bob,
            ),
        ),
        ("image", get(&site, &format!("/admin/image/{id}"), &bob)),
        ("edit", get(&site, &format!("/admin/image/{id}/edit"), &bob)),
        (
            "delete",
            get(&site, &format!("/admin/image/{id}/delete"), &bob),
        ),
        ("search", get(&site, &format!("/admin/search?q={q}"), &bob)),
        (
            "search with the category",
            get(
                &site,
                &format!(
                    "/admin/search?q={q}&category={}",
                    crate::pages::enc(category)
                ),
                &bob,
            ),
        ),
    ];
    for (name, r) in &pages {
        assert_eq!(r.status, 200, "{name}: {}", r.body_text());
        let html = r.body_text();
        for raw in [
            "<script>alert",
            "<img src=x",
            "<svg",
            "<b onclick",
            "onerror=alert(2)>",
            "' onmouseover='",
        ] {
            assert!(!html.contains(raw), "{name}: {raw:?} unescaped in {html}");
        }
        // The one script is the page's own, from a file.
        assert_eq!(html.matches("<script").count(), 1, "{name}: {html}");
        assert!(html.contains("&#60;"), "{name}: the markup shown as text");
    }
}

#[test]
fn one_users_pages_never_carry_anothers_state() {
    let site = site();
    let (bob, _) = uploaded(&site, "bob", &[("meta.title", "Kept")]);
    let image = images(&site).remove(0);
    let id = image.id.as_str().to_string();
    // ann's edit that fails (a stale form): her typed values come back to her only.
    let (ann, ann_token) = session(&site, "ann");
    let r = post(
        &site,
        &format!("/admin/image/{id}/edit"),
        &ann,
        &[
            ("csrf_token", &ann_token),
            ("updated", "1"),
            ("meta.title", "ann's unsaved draft"),
            ("category", "/travel"),
        ],
    );
    assert_eq!(r.status, 409);
    assert!(
        r.body_text().contains("ann&#39;s unsaved draft"),
        "{}",
        r.body_text()
    );
    for path in [
        format!("/admin/image/{id}/edit"),
        format!("/admin/image/{id}"),
        "/admin/upload".to_string(),
    ] {
        let r = get(&site, &path, &bob);
        assert_eq!(r.status, 200);
        let html = r.body_text();
        assert!(!html.contains("unsaved draft"), "{path}: {html}");
        assert!(!html.contains(&ann_token), "{path}: ann's token");
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }
    assert_eq!(
        catalog(&site).get(&image.id).unwrap().unwrap().meta["title"],
        "Kept"
    );
}

#[test]
fn the_category_tree_is_managed_with_only_the_allowed_controls() {
    let site = site();
    let (bob, token) = uploaded(&site, "bob", &[]);
    let change = |cookie: &str, token: &str, fields: &[(&str, &str)]| {
        let mut all = vec![("csrf_token", token)];
        all.extend_from_slice(fields);
        post(&site, "/admin/categories", cookie, &all)
    };
    // bob uploaded into /travel: he administers it (the creator's grant).
    let r = change(
        &bob,
        &token,
        &[
            ("action", "create"),
            ("category", "/travel"),
            ("name", "norway"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body_text());
    let html = get(&site, "/admin/categories?category=/travel/norway", &bob).body_text();
    assert!(
        html.contains("is empty") && html.contains("Rename or move"),
        "{html}"
    );
    let r = change(
        &bob,
        &token,
        &[
            ("action", "move"),
            ("category", "/travel"),
            ("to", "/trips"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body_text());
    assert!(images(&site).iter().all(|i| i.category == "/trips"));
    // Not empty: no delete button, and a forged delete is a conflict that changes nothing.
    let html = get(&site, "/admin/categories?category=/trips", &bob).body_text();
    assert!(
        html.contains("cannot be deleted") && !html.contains("Delete /trips"),
        "{html}"
    );
    let r = change(
        &bob,
        &token,
        &[("action", "delete"), ("category", "/trips")],
    );
    assert_eq!(r.status, 409, "{}", r.body_text());
    assert!(r.body_text().contains("role=\"alert\""));
    let r = change(
        &bob,
        &token,
        &[("action", "delete"), ("category", "/trips/norway")],
    );
    assert_eq!(r.status, 303, "{}", r.body_text());
    let tree = get(&site, "/admin/browse", &bob).body_text();
    assert!(
        tree.contains(">trips</a>") && !tree.contains(">norway</a>"),
        "{tree}"
    );

    // carl may only view: no forms, and forged changes are refused.
    let (carl, carl_token) = session(&site, "carl");
    let html = get(&site, "/admin/categories?category=/trips", &carl).body_text();
    assert!(html.contains("You may not change this category"), "{html}");
    assert!(!html.contains("action\" value=\"move"), "{html}");
    for fields in [
        vec![("action", "create"), ("category", "/trips"), ("name", "x")],
        vec![("action", "move"), ("category", "/trips"), ("to", "/carl")],
    ] {
        let r = change(&carl, &carl_token, &fields);
        assert_eq!(r.status, 403, "{fields:?}: {}", r.body_text());
    }
    assert!(images(&site).iter().all(|i| i.category == "/trips"));
}

#[test]
fn a_private_images_thumbnail_comes_through_a_checked_route() {
    let site = site();
    let (bob, _) = uploaded(&site, "bob", &[]);
    let id = images(&site)[0].id.as_str().to_string();
    // /travel made private: only bob, its creator, holds a grant there.
    catalog(&site)
        .set_inherit("category:/travel", false)
        .unwrap();
    let html = get(&site, "/admin/browse?category=/travel", &bob).body_text();
    let src = format!("src=\"./image/{id}/thumbnail\"");
    assert!(html.contains(&src), "{src} in {html}");
    let image = get(&site, &format!("/admin/image/{id}"), &bob).body_text();
    assert!(
        image.contains(&format!("src=\"../image/{id}/thumbnail\"")),
        "{image}"
    );
    let thumb = get(&site, &format!("/admin/image/{id}/thumbnail"), &bob);
    assert_eq!(thumb.status, 200, "{}", thumb.body_text());
    assert_eq!(thumb.header("content-type"), Some("image/jpeg"));
    assert_eq!(
        thumb.header("cache-control"),
        Some("private, max-age=86400")
    );
    let (format, size) = crate::redirector::dims(&thumb.body);
    assert_eq!(format, imgserv::domain::format::Format::Jpeg);
    assert!(size.width <= 240 && size.height <= 240, "{size:?}");
    // carl may not view /travel now: refused, and nobody is sent to log in.
    let (carl, _) = session(&site, "carl");
    let r = get(&site, &format!("/admin/image/{id}/thumbnail"), &carl);
    assert_eq!(r.status, 403, "{}", r.body_text());
    let r = page(
        &site,
        "GET",
        &format!("/admin/image/{id}/thumbnail"),
        None,
        None,
        &[],
    );
    assert_eq!(r.status, 303);
}
