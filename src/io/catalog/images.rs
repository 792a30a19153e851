//! Images: their rows, metadata (JSON objects, merged by RFC 7396) and the full-text index
//! kept in step with them.

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    CatalogError, Images, Intent, SqliteCatalog, bad_column, conversion, normalize_category,
    now_ms, removal,
};
use crate::domain::original::OriginalId;
use crate::domain::permission::Privilege;

/// Largest metadata object, as compact JSON.
pub const MAX_META_BYTES: usize = 64 * 1024;

/// An image as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    #[serde(serialize_with = "serialize_id", deserialize_with = "deserialize_id")]
    pub id: OriginalId,
    pub mime: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    /// Unix time in milliseconds.
    pub created: i64,
    /// Unix time in milliseconds of the last change to metadata or category.
    pub updated: i64,
    pub owner: Option<String>,
    /// `/` or `/a/b`.
    pub category: String,
    pub meta: Map<String, Value>,
}

fn serialize_id<S: serde::Serializer>(id: &OriginalId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(id.as_str())
}

/// An id read back (a cached record, `usecases::records`) is checked like any other.
fn deserialize_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<OriginalId, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(serde::de::Error::custom)
}

/// An image to record; `category` is normalised by [`Catalog::insert`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewImage {
    pub id: OriginalId,
    pub mime: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    pub owner: Option<String>,
    pub category: String,
    pub meta: Map<String, Value>,
}

/// What an insert found.
#[derive(Debug, Clone, PartialEq)]
pub enum Inserted {
    /// A new row (HTTP `201`).
    New(Image),
    /// The same bytes were there already; their row is untouched (HTTP `200`).
    Existed(Image),
}

impl Inserted {
    pub fn image(&self) -> &Image {
        match self {
            Inserted::New(i) | Inserted::Existed(i) => i,
        }
    }
}

pub(super) const IMAGE_COLUMNS: &str =
    "i.id, i.mime, i.width, i.height, i.bytes, i.created, i.updated, i.owner, i.category, i.meta";

impl Images for SqliteCatalog {
    fn get(&self, id: &OriginalId) -> Result<Option<Image>, CatalogError> {
        get_image(&self.conn, id)
    }

    fn probe(&self) -> Result<bool, CatalogError> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM images LIMIT 1")?
            .query_row([], |_| Ok(()))
            .optional()?
            .is_some())
    }

    fn originals(&self) -> Result<Vec<(OriginalId, String)>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, ext FROM images ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, ext) = row?;
            out.push((id.parse().map_err(|_| bad_column(0, "id"))?, ext));
        }
        Ok(out)
    }

    fn insert_granting(
        &mut self,
        new: &NewImage,
        intent: Option<Intent>,
        creator: Option<Privilege>,
    ) -> Result<Inserted, CatalogError> {
        let category = normalize_category(&new.category)?;
        let meta = meta_json(&new.meta)?;
        let now = now_ms();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(i) = intent.as_ref().filter(|i| i.image == new.id)
            && !removal::intent_holds(&tx, i)?
            && get_image(&tx, &new.id)?.is_none()
        {
            removal::leave_for_sweep(&tx, &new.id, ext_of(&new.mime))?;
            tx.commit()?;
            return Err(CatalogError::UploadExpired(new.id.clone()));
        }
        // The upload makes the category exist: it was not in the tree (a category created
        // empty was given to its creator then; an implied ancestor is not the uploader's).
        let first_of_category = creator.is_some() && !super::categories::exists(&tx, &category)?;
        let added = tx
            .prepare_cached(
                "INSERT INTO images (id, mime, ext, width, height, bytes, created, updated, owner, category, meta)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10)
                 ON CONFLICT (id) DO NOTHING",
            )?
            .execute(params![
                new.id.as_str(),
                new.mime,
                ext_of(&new.mime),
                new.width,
                new.height,
                i64::try_from(new.bytes).unwrap_or(i64::MAX),
                now,
                new.owner,
                category,
                meta
            ])?;
        if added == 1 {
            let seq = tx.last_insert_rowid();
            tx.prepare_cached(
                "INSERT INTO images_fts (rowid, category, meta) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![seq, category, meta_text(&new.meta)])?;
            if let (true, Some(owner), Some(privilege)) = (first_of_category, &new.owner, creator) {
                super::grants::creator_grant(&tx, &category, owner, privilege)?;
            }
        }
        if let Some(i) = intent {
            // Only an intent for these bytes: another image's stays for the sweep.
            tx.prepare_cached(
                "DELETE FROM pending_deletes WHERE id = ?1 AND kind = 'upload' AND image = ?2",
            )?
            .execute(params![i.pending_id, new.id.as_str()])?;
        }
        let image =
            get_image(&tx, &new.id)?.ok_or_else(|| CatalogError::NotFound(new.id.clone()))?;
        tx.commit()?;
        Ok(if added == 1 {
            Inserted::New(image)
        } else {
            Inserted::Existed(image)
        })
    }

    fn replace_meta(
        &mut self,
        id: &OriginalId,
        meta: &Map<String, Value>,
    ) -> Result<Image, CatalogError> {
        self.update(id, |image| {
            image.meta = meta.clone();
            Ok(())
        })
    }

    fn merge_meta(
        &mut self,
        id: &OriginalId,
        patch: &Map<String, Value>,
    ) -> Result<Image, CatalogError> {
        self.update(id, |image| {
            merge_patch(&mut image.meta, patch);
            Ok(())
        })
    }

    fn move_to(&mut self, id: &OriginalId, category: &str) -> Result<Image, CatalogError> {
        let category = normalize_category(category)?;
        self.update(id, |image| {
            image.category = category;
            Ok(())
        })
    }
}

impl SqliteCatalog {
    /// Reads, changes and writes one image's category and metadata in one transaction.
    fn update(
        &mut self,
        id: &OriginalId,
        change: impl FnOnce(&mut Image) -> Result<(), CatalogError>,
    ) -> Result<Image, CatalogError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut image = get_image(&tx, id)?.ok_or_else(|| CatalogError::NotFound(id.clone()))?;
        change(&mut image)?;
        let meta = meta_json(&image.meta)?;
        image.updated = now_ms().max(image.updated);
        let seq: i64 = tx
            .prepare_cached(
                "UPDATE images SET category = ?2, meta = ?3, updated = ?4 WHERE id = ?1 RETURNING seq",
            )?
            .query_row(
                params![id.as_str(), image.category, meta, image.updated],
                |r| r.get(0),
            )?;
        tx.prepare_cached("UPDATE images_fts SET category = ?2, meta = ?3 WHERE rowid = ?1")?
            .execute(params![seq, image.category, meta_text(&image.meta)])?;
        tx.commit()?;
        Ok(image)
    }
}

/// The format of a catalogued original's `mime` type, for reading it from the store.
pub fn format_of(mime: &str) -> Option<crate::domain::format::Format> {
    use crate::domain::format::Format;
    [Format::Jpeg, Format::Png, Format::Gif, Format::Webp]
        .into_iter()
        .find(|f| f.mime() == mime)
}

/// The extension the original object of a `mime` type is stored with; `bin` for others.
pub fn ext_of(mime: &str) -> &'static str {
    match mime {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/gif" => "gif",
        "image/webp" => "webp",
        "image/avif" => "avif",
        "image/tiff" => "tif",
        "image/bmp" => "bmp",
        _ => "bin",
    }
}

/// Compact JSON of the metadata, refused beyond [`MAX_META_BYTES`].
fn meta_json(meta: &Map<String, Value>) -> Result<String, CatalogError> {
    let json = serde_json::to_string(meta).map_err(|e| CatalogError::BadMeta(e.to_string()))?;
    if json.len() > MAX_META_BYTES {
        return Err(CatalogError::BadMeta(format!(
            "is {} bytes as JSON, more than {MAX_META_BYTES}",
            json.len()
        )));
    }
    Ok(json)
}

/// The text full-text search sees for the metadata: every key and every scalar value, nested
/// ones included, separated by newlines.
fn meta_text(meta: &Map<String, Value>) -> String {
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::Null => {}
            Value::Bool(b) => {
                out.push_str(if *b { "true" } else { "false" });
                out.push('\n');
            }
            Value::Number(n) => {
                out.push_str(&n.to_string());
                out.push('\n');
            }
            Value::String(s) => {
                out.push_str(s);
                out.push('\n');
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            Value::Object(o) => {
                for (k, v) in o {
                    out.push_str(k);
                    out.push('\n');
                    walk(v, out);
                }
            }
        }
    }
    let mut out = String::new();
    for (k, v) in meta {
        out.push_str(k);
        out.push('\n');
        walk(v, &mut out);
    }
    out
}

/// RFC 7396 on objects.
fn merge_patch(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (k, v) in patch {
        match v {
            Value::Null => {
                target.remove(k);
            }
            Value::Object(p) => {
                let slot = target
                    .entry(k.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(t) = slot {
                    merge_patch(t, p);
                }
            }
            other => {
                target.insert(k.clone(), other.clone());
            }
        }
    }
}

pub(super) fn get_image(conn: &Connection, id: &OriginalId) -> Result<Option<Image>, CatalogError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {IMAGE_COLUMNS} FROM images i WHERE i.id = ?1"
        ))?
        .query_row(params![id.as_str()], image_row)
        .optional()?)
}

pub(super) fn image_row(r: &Row) -> rusqlite::Result<Image> {
    let id: String = r.get(0)?;
    let meta: String = r.get(9)?;
    Ok(Image {
        id: id.parse().map_err(|_| conversion(0, "id"))?,
        mime: r.get(1)?,
        width: r.get(2)?,
        height: r.get(3)?,
        bytes: r.get::<_, i64>(4)?.max(0) as u64,
        created: r.get(5)?,
        updated: r.get(6)?,
        owner: r.get(7)?,
        category: r.get(8)?,
        meta: serde_json::from_str(&meta).map_err(|_| conversion(9, "meta"))?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::io::catalog::MAX_META_BYTES;
    use crate::io::catalog::testing::*;

    #[test]
    fn insert_then_existed() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        let first = add(&mut c, 1, "travel//norway/", json!({"title": "Fjord"}));
        assert_eq!(first.category, "/travel/norway");
        assert_eq!(first.created, first.updated);
        assert_eq!(c.get(&id(1)).unwrap().as_ref(), Some(&first));
        // The same bytes again, with other details: the first row stays as it was.
        let mut again = new(1, "/elsewhere", json!({"title": "Other"}));
        again.owner = Some("bob".into());
        assert_eq!(
            c.insert(&again, None).unwrap(),
            Inserted::Existed(first.clone())
        );
        assert_eq!(c.get(&id(1)).unwrap(), Some(first));
        assert_eq!(search(&c, Some("other"), None).total, 0);
        assert_eq!(c.get(&id(2)).unwrap(), None);
        // A bad category or oversized metadata inserts nothing.
        assert!(matches!(
            c.insert(&new(2, "/a/../b", json!({})), None),
            Err(CatalogError::BadCategory(_))
        ));
        let big = json!({"x": "y".repeat(MAX_META_BYTES)});
        assert!(matches!(
            c.insert(&new(2, "/", big), None),
            Err(CatalogError::BadMeta(_))
        ));
        assert_eq!(c.get(&id(2)).unwrap(), None);
    }

    #[test]
    fn merge_replace_move() {
        let t = tempfile::tempdir().unwrap();
        let mut c = open(&t);
        add(
            &mut c,
            1,
            "/a",
            json!({"title": "Old", "camera": {"make": "Fuji", "lens": "23mm"}, "keep": 1}),
        );
        let merged = c
            .merge_meta(
                &id(1),
                &meta(json!({"title": "New", "camera": {"lens": null, "iso": 200}, "keep": null, "added": [1, 2]})),
            )
            .unwrap();
        assert_eq!(
            Value::Object(merged.meta.clone()),
            json!({"title": "New", "camera": {"make": "Fuji", "iso": 200}, "added": [1, 2]})
        );
        assert!(merged.updated >= merged.created);
        // An object replaces a scalar; nulls inside a new object are dropped (RFC 7396).
        let m = c
            .merge_meta(&id(1), &meta(json!({"title": {"en": "Fjord", "de": null}})))
            .unwrap();
        assert_eq!(m.meta["title"], json!({"en": "Fjord"}));
        assert_eq!(ids(&search(&c, Some("fjord"), None)), [id(1)]);
        assert_eq!(
            search(&c, Some("old"), None).total,
            0,
            "index follows merges"
        );
        let replaced = c
            .replace_meta(&id(1), &meta(json!({"only": "this"})))
            .unwrap();
        assert_eq!(Value::Object(replaced.meta), json!({"only": "this"}));
        assert_eq!(
            search(&c, Some("fuji"), None).total,
            0,
            "index follows replaces"
        );
        assert_eq!(c.get(&id(1)).unwrap().unwrap().meta["only"], "this");
        let moved = c.move_to(&id(1), "b/c/").unwrap();
        assert_eq!(moved.category, "/b/c");
        assert_eq!(ids(&search(&c, None, Some("/b"))), [id(1)]);
        assert_eq!(search(&c, None, Some("/a")).total, 0);
        assert_eq!(
            ids(&search(&c, Some("c"), None)),
            [id(1)],
            "index follows moves"
        );
        assert!(matches!(
            c.move_to(&id(1), "/.."),
            Err(CatalogError::BadCategory(_))
        ));
        for r in [
            c.merge_meta(&id(9), &Map::new()),
            c.replace_meta(&id(9), &Map::new()),
            c.move_to(&id(9), "/x"),
        ] {
            assert!(matches!(r, Err(CatalogError::NotFound(_))));
        }
        let big = meta(json!({"x": "y".repeat(MAX_META_BYTES)}));
        assert!(matches!(
            c.merge_meta(&id(1), &big),
            Err(CatalogError::BadMeta(_))
        ));
        assert_eq!(
            c.get(&id(1)).unwrap().unwrap().meta["only"],
            "this",
            "unchanged"
        );
    }
}
