//! The dashboard's content pages in a real browser (headless Chromium with JavaScript on,
//! `support::browser`) against a real standalone server: the whole flow of an editor (upload
//! three files through the page's script, one refused; browse to the category; open an image;
//! edit its metadata and category; move it with Browse's form; search for it; delete it through
//! the confirmation page; log out), each step checked on the page, in the catalog and in the
//! store, each page by axe-core (browse, image and upload at phone width too) and
//! screenshotted; a viewer, who sees no controls and whose forged requests get `403`; a file
//! dropped onto the upload form; and the image page's copy buttons. The flow without
//! JavaScript is `content`'s; the helpers are `dashboard`'s.

use std::path::Path;

use serde_json::json;

use crate::content::{catalog, images, stored, title};
use crate::dashboard::{
    check_at_phone_width, log_in, log_out, password_of, site_with, upload, upload_chosen,
    wait_until,
};
use crate::support::browser::{self, Browser, Element};
use crate::support::{fixture_bytes, standalone};

/// How many files are under `dir`.
fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            if e.path().is_dir() {
                files_in(&e.path())
            } else {
                1
            }
        })
        .sum()
}

/// The element among those matching `css` whose text is `text`.
fn with_text<'b>(b: &'b Browser, css: &str, text: &str) -> Element<'b> {
    let all = b.find_all(css);
    let texts: Vec<String> = all.iter().map(|e| e.text()).collect();
    let at = texts.iter().position(|t| t == text).unwrap_or_else(|| {
        panic!(
            "no `{css}` reads {text:?} on {}: {texts:?}",
            b.current_url()
        )
    });
    all.into_iter().nth(at).unwrap()
}

/// Whether every image on the page has been fetched and decoded (none broken).
fn images_decoded(b: &Browser) -> Vec<(String, u64)> {
    let decoded = b.execute_async(
        "const done = arguments[arguments.length - 1];
         Promise.all([...document.images].map(i => i.decode().then(() => i, () => i)))
           .then(all => done(all.map(i => [i.alt, i.naturalWidth])));",
        vec![],
    );
    decoded
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_u64().unwrap()))
        .collect()
}

#[test]
fn upload_browse_edit_move_search_delete_and_log_out_in_a_browser() {
    let Some(b) = browser::shared() else { return };
    let site = site_with("", &[("ed", "editor")]);
    let (_server, base) = standalone(&site);
    let admin = format!("{base}/imgserv.cgi/admin/");
    log_in(&b, &admin, "ed", &password_of("ed"));

    // Upload, from the header's link: three files at once, one a text file named .jpg; the
    // page's script sends them one by one and shows each outcome with its progress bar.
    with_text(&b, "header nav a", "Upload").click_and_wait();
    b.assert_accessible("upload");
    b.screenshot("dashboard-upload");
    let shown = upload(
        &b,
        "/travel",
        &[("title", "Holiday")],
        &[
            "photo-rocket-640x427.jpg",
            "photo-chelsea-cat-451x300.png",
            "bad-text-named.jpg",
        ],
    );
    let kinds: Vec<(&str, &str)> = shown
        .iter()
        .map(|s| (s.name.as_str(), s.kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("photo-rocket-640x427.jpg", "new"),
            ("photo-chelsea-cat-451x300.png", "new"),
            ("bad-text-named.jpg", "refused"),
        ]
    );
    assert!(
        shown[0]
            .text
            .contains("added, 640 × 427 image/jpeg into /travel Open photo-rocket-640x427.jpg"),
        "{shown:?}"
    );
    assert!(
        shown[2]
            .text
            .starts_with("bad-text-named.jpg: refused: not an image"),
        "{shown:?}"
    );
    for s in &shown {
        assert!(s.progress.1 > 0.0 && s.progress.0 == s.progress.1, "{s:?}");
    }
    b.assert_accessible("upload done");
    b.screenshot("dashboard-upload-done");
    check_at_phone_width(&b, "dashboard-upload-done");
    // Two originals in the catalog and the store, the text file nowhere.
    let rows = images(&site);
    assert_eq!(rows.len(), 2, "{rows:?}");
    for image in &rows {
        assert_eq!(image.category, "/travel");
        assert_eq!(title(image), "Holiday");
        assert_eq!(image.owner.as_deref(), Some("ed"));
        assert!(stored(&site, &image.id).is_some(), "{} stored", image.id);
    }
    assert_eq!(files_in(&site.store()), 2);
    let rocket = rows
        .iter()
        .find(|i| i.mime == "image/jpeg")
        .unwrap()
        .clone();
    let cat = rows.iter().find(|i| i.mime == "image/png").unwrap().clone();
    let id = rocket.id.as_str().to_string();

    // Browse, then the category in the tree: its two images as cards with thumbnails.
    with_text(&b, "header nav a", "Browse").click_and_wait();
    with_text(&b, ".tree a", "travel").click_and_wait();
    assert_eq!(b.find("h1").text(), "Browse /travel");
    assert_eq!(b.find(".tree [aria-current=page]").text(), "travel");
    let cards: Vec<String> = b
        .find_all(".card .title")
        .iter()
        .map(|c| c.text())
        .collect();
    assert_eq!(cards, ["Holiday", "Holiday"]);
    let thumbs = images_decoded(&b);
    assert_eq!(thumbs.len(), 2, "{thumbs:?}");
    assert!(
        thumbs.iter().all(|(alt, w)| alt.is_empty() && *w > 0),
        "{thumbs:?}"
    );
    b.assert_accessible("browse");
    b.screenshot("dashboard-browse");
    check_at_phone_width(&b, "dashboard-browse");

    // Open the rocket: its facts, metadata, the controls an editor has.
    b.find(&format!(".card a[href$='image/{id}']"))
        .click_and_wait();
    assert_eq!(b.find("h1").text(), "Holiday");
    let facts = b.find("dl.facts").text();
    for want in [
        "/travel",
        "640 × 427 pixels",
        "image/jpeg",
        id.as_str(),
        "Owner\ned",
    ] {
        assert!(facts.contains(want), "{want:?} in {facts}");
    }
    assert_eq!(b.find("table.meta td").text(), "Holiday");
    let preview = images_decoded(&b);
    assert!(
        preview.iter().any(|(alt, w)| alt == "Holiday" && *w > 0),
        "{preview:?}"
    );
    b.assert_accessible("image");
    b.screenshot("dashboard-image");
    check_at_phone_width(&b, "dashboard-image");

    // Edit: a new title, a key added, another category.
    with_text(&b, ".actions a", "Edit metadata and category").click_and_wait();
    assert_eq!(b.find("h1").text(), "Edit Holiday");
    let field = b.find("textarea[name='meta.title']");
    field.clear();
    field.type_text("Geiranger fjord");
    b.find("#new-key").type_text("photographer");
    b.find("#new-value").type_text("Ana");
    let field = b.find("#category");
    field.clear();
    field.type_text("/travel/norway");
    b.assert_accessible("edit");
    b.screenshot("dashboard-edit");
    with_text(&b, "form.edit button", "Save").click_and_wait();
    assert!(
        b.current_url().ends_with(&format!("image/{id}?saved=1")),
        "{}",
        b.current_url()
    );
    assert_eq!(b.find(".notice[role=status]").text(), "Saved.");
    assert_eq!(b.find("h1").text(), "Geiranger fjord");
    let meta = b.find("table.meta").text();
    assert!(meta.contains("photographer Ana"), "{meta}");
    assert_eq!(b.find(".crumbs a").text(), "/travel/norway");
    let saved = catalog(&site).get(&rocket.id).unwrap().unwrap();
    assert_eq!(title(&saved), "Geiranger fjord");
    assert_eq!(saved.meta["photographer"], "Ana");
    assert_eq!(saved.category, "/travel/norway");
    b.assert_accessible("image after saving");
    b.screenshot("dashboard-saved");

    // Move it on with Browse's form: its box ticked, the target typed.
    b.find(".crumbs a").click_and_wait();
    assert_eq!(b.find("h1").text(), "Browse /travel/norway");
    assert_eq!(b.find_all(".card").len(), 1);
    b.find(&format!("label[for='select-{id}']")).click();
    assert_eq!(
        b.find(&format!("#select-{id}")).property("checked"),
        json!(true)
    );
    b.find("#move-category").type_text("/archive");
    b.assert_accessible("browse with a selection");
    with_text(&b, "form#move button", "Move selected").click_and_wait();
    assert_eq!(
        b.find(".notice[role=status]").text(),
        "Moved 1 image to /archive."
    );
    assert_eq!(b.find("h1").text(), "Browse /archive");
    assert_eq!(
        catalog(&site).get(&rocket.id).unwrap().unwrap().category,
        "/archive"
    );
    assert_eq!(
        catalog(&site).get(&cat.id).unwrap().unwrap().category,
        "/travel"
    );
    b.assert_accessible("browse after a move");
    b.screenshot("dashboard-moved");

    // Search for a word of its new title: one result, the word marked.
    with_text(&b, "header nav a", "Search").click_and_wait();
    b.find("#q").type_text("geiranger");
    b.find("#q").submit();
    assert_eq!(
        b.find("h2#results-title").text(),
        "Images matching geiranger"
    );
    let results = b.find_all(".result");
    assert_eq!(results.len(), 1);
    let marks: Vec<String> = b
        .find_all(".result mark")
        .iter()
        .map(|m| m.text())
        .collect();
    assert_eq!(marks, ["Geiranger"]);
    assert_eq!(b.find(".result .title").text(), "Geiranger fjord");
    b.assert_accessible("search");
    b.screenshot("dashboard-search");

    // Delete it through the confirmation page, which says what goes.
    b.find(".result a").click_and_wait();
    with_text(&b, ".actions a", "Delete").click_and_wait();
    assert_eq!(b.find("h1").text(), "Delete Geiranger fjord?");
    let listed = b.find("main").text();
    for want in [
        "the original: image/jpeg, 640 × 427 pixels",
        id.as_str(),
        "its place in /archive",
    ] {
        assert!(listed.contains(want), "{want:?} in {listed}");
    }
    b.assert_accessible("delete");
    b.screenshot("dashboard-delete");
    let file = stored(&site, &rocket.id).unwrap();
    with_text(&b, "form.confirm button", "Delete it").click_and_wait();
    assert_eq!(b.find("h1").text(), "Browse /archive");
    assert_eq!(b.find(".notice[role=status]").text(), "Deleted the image.");
    assert!(b.find("main").text().contains("No images here"));
    assert!(catalog(&site).get(&rocket.id).unwrap().is_none());
    assert!(!file.exists(), "{} removed", file.display());
    assert_eq!(files_in(&site.store()), 1);
    assert_eq!(images(&site), [cat]);
    b.goto(&format!("{admin}image/{id}"));
    assert_eq!(b.find("h1").text(), "Page not found");

    // Log out: the login page; the dashboard is closed again.
    log_out(&b, &admin);
}

#[test]
fn a_viewer_sees_no_controls_and_forged_requests_change_nothing() {
    let Some(b) = browser::shared() else { return };
    let site = site_with("", &[("ed", "editor"), ("vic", "viewer")]);
    let (_server, base) = standalone(&site);
    let admin = format!("{base}/imgserv.cgi/admin/");
    log_in(&b, &admin, "ed", &password_of("ed"));
    b.goto(&format!("{admin}upload"));
    let shown = upload(
        &b,
        "/travel",
        &[("title", "Ed's")],
        &["photo-rocket-640x427.jpg"],
    );
    assert_eq!(shown[0].kind, "new", "{shown:?}");
    b.find("form[action$='logout'] button").click_and_wait();
    let before = images(&site);
    let id = before[0].id.as_str().to_string();
    let file = stored(&site, &before[0].id).unwrap();

    log_in(&b, &admin, "vic", &password_of("vic"));
    // Browse: the card, no boxes to tick and no move form.
    b.goto(&format!("{admin}browse?category=/travel"));
    assert_eq!(b.find_all(".card").len(), 1);
    assert!(b.find_all(".card input[type=checkbox]").is_empty());
    assert!(b.try_find("form#move").is_none());
    b.assert_accessible("browse for a viewer");
    // The image page: facts, no Edit, no Delete.
    b.find(&format!(".card a[href$='image/{id}']"))
        .click_and_wait();
    assert_eq!(b.find("h1").text(), "Ed's");
    assert!(b.try_find(".actions").is_none());
    assert!(b.try_find("a[href$='/edit']").is_none());
    assert!(b.try_find("a[href$='/delete']").is_none());
    b.assert_accessible("image for a viewer");
    b.screenshot("dashboard-viewer-image");
    // The edit form's address typed in: refused with a page saying so.
    b.goto(&format!("{admin}image/{id}/edit"));
    assert_eq!(b.find("h1").text(), "Forbidden");
    b.assert_accessible("forbidden");
    b.screenshot("dashboard-forbidden");

    // Forged from the page: vic's own CSRF token (the logout form's), posted with fetch() to
    // edit, delete and move.
    let statuses = b.execute_async(
        "const [edit, del, move, id, updated] = arguments;
         const done = arguments[arguments.length - 1];
         const token = document.querySelector(\"form[action$='logout'] [name=csrf_token]\").value;
         const post = (url, fields) => fetch(url, {
             method: 'POST', redirect: 'manual',
             body: new URLSearchParams({csrf_token: token, ...fields})}).then(r => r.status);
         Promise.all([
           post(edit, {updated: updated, 'meta.title': 'Mine now', category: '/vic'}),
           post(del, {}),
           post(move, {id: id, category: '/vic'}),
         ]).then(done, e => done(String(e)));",
        vec![
            json!(format!("{admin}image/{id}/edit")),
            json!(format!("{admin}image/{id}/delete")),
            json!(format!("{admin}move")),
            json!(id),
            json!(before[0].updated.to_string()),
        ],
    );
    assert_eq!(statuses, json!([403, 403, 403]));
    assert_eq!(images(&site), before);
    assert!(file.exists());
}

#[test]
fn a_dropped_file_is_uploaded_and_the_copy_button_copies_its_url() {
    let Some(b) = browser::shared() else { return };
    let site = site_with("", &[("ed", "editor")]);
    let (_server, base) = standalone(&site);
    let admin = format!("{base}/imgserv.cgi/admin/");
    log_in(&b, &admin, "ed", &password_of("ed"));
    b.goto(&format!("{admin}upload"));

    // A file dropped onto the file field (a drag from the desktop: DragEvents carrying it, as
    // the browser dispatches them) is chosen, and Upload sends it.
    let field = b.find("#category");
    field.clear();
    field.type_text("/travel");
    let dropped = b.execute(
        "const [bytes] = arguments;
         const data = new DataTransfer();
         data.items.add(new File([new Uint8Array(bytes)], 'hopper.png', {type: 'image/png'}));
         const zone = document.querySelector('form[data-upload] .drop');
         const fire = kind => zone.dispatchEvent(new DragEvent(kind,
             {dataTransfer: data, bubbles: true, cancelable: true}));
         fire('dragover');
         const over = zone.classList.contains('over');
         fire('drop');
         const files = document.getElementById('file').files;
         return [over, zone.classList.contains('over'), files.length, files[0].name];",
        vec![json!(fixture_bytes("photo-hopper-128x128.png"))],
    );
    assert_eq!(dropped, json!([true, false, 1, "hopper.png"]));
    let shown = upload_chosen(&b, 1);
    assert_eq!(shown[0].kind, "new", "{shown:?}");
    assert!(
        shown[0]
            .text
            .starts_with("hopper.png: added, 128 × 128 image/png into /travel"),
        "{shown:?}"
    );
    let id = images(&site)[0].id.as_str().to_string();
    assert!(stored(&site, &images(&site)[0].id).is_some());
    b.cdp(
        "Browser.grantPermissions",
        json!({"origin": base, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]}),
    );
    b.goto(&format!("{admin}image/{id}"));

    // The script shows a button beside each URL, named after what it copies.
    let fields = b.find_all(".embeds input");
    let buttons = b.find_all(".embeds button.copy");
    assert!(!buttons.is_empty());
    assert_eq!(fields.len(), buttons.len());
    for (field, button) in fields.iter().zip(&buttons) {
        assert!(button.is_displayed());
        assert_eq!(button.text(), "Copy");
        let label = b.find(&format!("label[for='{}']", field.attribute("id").unwrap()));
        assert_eq!(
            button.attribute("aria-label"),
            Some(format!("Copy {}", label.text()))
        );
    }
    let status = b.find(".copied[role=status]");
    assert_eq!(status.text(), "");

    // Clicking the last one (full size): the URL is on the clipboard, and the status line says so.
    let url = fields.last().unwrap().property("value");
    let url = url.as_str().unwrap().to_string();
    assert!(url.starts_with(&base) && url.contains(&id), "{url}");
    buttons.last().unwrap().click();
    wait_until(
        &b,
        "return document.querySelector('.copied').textContent !== ''",
        vec![],
        "the copy button's status",
    );
    assert_eq!(status.text(), format!("Copied: {url}"));
    let pasted = b.execute_async(
        "const done = arguments[arguments.length - 1];
         navigator.clipboard.readText().then(done, e => done('refused: ' + e));",
        vec![],
    );
    assert_eq!(pasted, json!(url));
    b.assert_accessible("image after a copy");
}

#[test]
fn without_javascript_the_upload_form_posts_every_file_and_lists_the_outcomes() {
    let options = browser::Options {
        javascript: false,
        ..browser::Options::default()
    };
    let Some(b) = Browser::start(options) else {
        return;
    };
    let site = site_with("", &[("ed", "editor")]);
    let (_server, base) = standalone(&site);
    let admin = format!("{base}/imgserv.cgi/admin/");
    log_in(&b, &admin, "ed", &password_of("ed"));
    b.goto(&format!("{admin}upload"));
    let field = b.find("#category");
    field.clear();
    field.type_text("/travel");
    let paths: Vec<String> = ["photo-rocket-640x427.jpg", "bad-text-named.jpg"]
        .iter()
        .map(|f| crate::support::fixture(f).to_str().unwrap().to_string())
        .collect();
    b.find("#file").type_text(&paths.join("\n"));
    // The form itself posts both files at once; the answer is a page listing each outcome.
    b.find("form[data-upload] button[type=submit]")
        .click_and_wait();
    assert_eq!(
        b.find("#outcomes-title").text(),
        "1 new, 0 already there, 1 refused"
    );
    let lines: Vec<String> = b.find_all(".outcome").iter().map(|o| o.text()).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("photo-rocket-640x427.jpg: added, 640 × 427 image/jpeg into /travel"),
        "{lines:?}"
    );
    assert_eq!(lines[1], "bad-text-named.jpg: refused: not an image");
    b.screenshot("dashboard-upload-done-nojs");
    let rows = images(&site);
    assert_eq!(rows.len(), 1);
    assert_eq!(files_in(&site.store()), 1);

    // The image page: the URLs to embed are there to select; the copy buttons, which need the
    // script, are not shown.
    with_text(&b, ".outcome a", "Open photo-rocket-640x427.jpg").click_and_wait();
    assert_eq!(b.find("dl.facts dd code").text(), rows[0].id.as_str());
    assert!(!b.find_all(".embeds input").is_empty());
    assert!(
        b.find_all(".embeds button.copy")
            .iter()
            .all(|c| !c.is_displayed())
    );
}
