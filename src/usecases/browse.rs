//! Browsing and searching, as the dashboard's pages and `GET /api/images` need them: a page of
//! a category's images (newest first or by name), the category tree with counts, and a page
//! of full-text matches with highlighted fragments — each page followed by an opaque cursor
//! to the next (keyset pagination: `catalog::Browse`), and only what the actor may view.
//!
//! The view models are plain data ([`Card`], [`Found`], [`Fragment`]): no markup is made
//! here, and a highlight is structure (text, is it a match), never HTML. Rendering them is the
//! web layer's.

use std::collections::HashMap;

use serde::Serialize;

use crate::domain::cursor::{self, Order, Position};
use crate::domain::geometry::{self, Size};
use crate::domain::permission::Privilege;
use crate::domain::query::QueryError;
use crate::io::catalog::{self, Catalog, Category, Fragment, Image};
use crate::io::config::Config;
use crate::usecases::error::Error;
use crate::usecases::permissions::{Actor, Permissions};
use crate::usecases::records::Records;

/// Which images: a category (normalised here), with or without those below it, in an order,
/// after a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub category: String,
    /// The categories below `category` too.
    pub below: bool,
    pub order: Order,
    /// The `next` of the page before, if any.
    pub after: Option<String>,
    /// From 1 to [`MAX_PER_PAGE`](crate::io::config::MAX_DASHBOARD_PER_PAGE).
    pub per_page: u32,
}

/// Words to find in every image's metadata and category, within a category and below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    pub q: String,
    /// `None` or `/`: everywhere.
    pub category: Option<String>,
    pub after: Option<String>,
    pub per_page: u32,
}

/// One page of items and the cursor to the next (`None` on the last page).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// A thumbnail: the 404 handler's canonical URL of a variant and its size in pixels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Thumbnail {
    pub url: String,
    pub width: u32,
    pub height: u32,
}

/// What a listing shows of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Card {
    pub id: String,
    /// The metadata `title` when it is a non-blank string (trimmed).
    pub title: Option<String>,
    pub category: String,
    pub width: u32,
    pub height: u32,
    pub owner: Option<String>,
    /// Unix time in milliseconds.
    pub created: i64,
    /// `None` when no URL would show it: the image is not public (the 404 handler serves
    /// public images only), its type has no variants, or signed URLs are required and the
    /// thumbnail box is no preset.
    pub thumbnail: Option<Thumbnail>,
}

/// A match: the image and the best fragment of its metadata, matched words marked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Found<T> {
    pub image: T,
    pub snippet: Vec<Fragment>,
}

/// A page of a listing's catalog rows (the REST route's answer).
pub fn list(
    config: &Config,
    records: &Records,
    catalog: &Catalog,
    actor: &Actor,
    listing: &Listing,
) -> Result<Page<Image>, Error> {
    check_per_page(listing.per_page)?;
    let category = catalog::normalize_category(&listing.category)?;
    let context = format!(
        "list\0{}\0{category}\0{}",
        listing.order.as_str(),
        listing.below
    );
    let after = decode(listing.after.as_deref(), &context)?;
    let perms = Permissions::new(config, records);
    let limit = listing.per_page + 1;
    let rows = if listing.below {
        // The subtree without the categories holding images the actor may not view (as a
        // search leaves them out): no list of the subtree's categories is needed.
        let hidden = perms.hidden_categories(catalog, actor)?;
        catalog.listing_below(&category, &hidden, listing.order, after.as_ref(), limit)?
    } else if perms.may(
        catalog,
        actor,
        Privilege::View,
        &catalog::category_object(&category),
    )? {
        catalog.listing(&[category], listing.order, after.as_ref(), limit)?
    } else {
        // No word on whether it holds anything.
        Vec::new()
    };
    let (rows, next) = split(rows, listing.per_page, |l| &l.position, &context);
    Ok(Page {
        items: rows.into_iter().map(|l| l.image).collect(),
        next,
    })
}

/// A page of a listing as cards (the Browse page).
pub fn browse(
    config: &Config,
    records: &Records,
    catalog: &Catalog,
    actor: &Actor,
    listing: &Listing,
) -> Result<Page<Card>, Error> {
    let page = list(config, records, catalog, actor, listing)?;
    Ok(Page {
        items: cards(config, records, catalog, &page.items)?,
        next: page.next,
    })
}

/// A page of full-text matches as catalog rows (the REST route's answer): the newest
/// [`RANKED_MATCHES`](catalog::RANKED_MATCHES) best first, then the older ones newest first.
pub fn find(
    config: &Config,
    records: &Records,
    catalog: &Catalog,
    actor: &Actor,
    search: &Search,
) -> Result<Page<Found<Image>>, Error> {
    check_per_page(search.per_page)?;
    let category = match search.category.as_deref() {
        None => "/".to_string(),
        Some(c) => catalog::normalize_category(c)?,
    };
    let words = search.q.split_whitespace().collect::<Vec<_>>().join(" ");
    let context = format!("search\0{words}\0{category}");
    let after = decode(search.after.as_deref(), &context)?;
    let hidden = Permissions::new(config, records).hidden_categories(catalog, actor)?;
    let hits = catalog.matching(
        &words,
        Some(&category),
        &hidden,
        after.as_ref(),
        search.per_page + 1,
    )?;
    let (hits, next) = split(hits, search.per_page, |h| &h.position, &context);
    Ok(Page {
        items: hits
            .into_iter()
            .map(|h| Found {
                image: h.image,
                snippet: h.snippet,
            })
            .collect(),
        next,
    })
}

/// A page of full-text matches as cards (the Search page).
pub fn search(
    config: &Config,
    records: &Records,
    catalog: &Catalog,
    actor: &Actor,
    search: &Search,
) -> Result<Page<Found<Card>>, Error> {
    let page = find(config, records, catalog, actor, search)?;
    let images: Vec<Image> = page.items.iter().map(|f| f.image.clone()).collect();
    let cards = cards(config, records, catalog, &images)?;
    Ok(Page {
        items: cards
            .into_iter()
            .zip(page.items)
            .map(|(card, f)| Found {
                image: card,
                snippet: f.snippet,
            })
            .collect(),
        next: page.next,
    })
}

/// The category tree with counts, of what the actor may view.
pub fn tree(
    config: &Config,
    records: &Records,
    catalog: &Catalog,
    actor: &Actor,
) -> Result<Vec<Category>, Error> {
    Ok(Permissions::new(config, records).visible_categories(catalog, actor)?)
}

/// The cards of `images`, with their thumbnails.
pub fn cards(
    config: &Config,
    records: &Records,
    catalog: &Catalog,
    images: &[Image],
) -> Result<Vec<Card>, Error> {
    let bbox = config.dashboard.thumbnail;
    let raster = config.cache.raster;
    // The 404 handler refuses an unsigned box that no preset serves.
    let unsigned = !config.security.require_signed_urls
        || config.presets.values().flatten().any(|&b| b == bbox);
    let variants = Permissions::new(config, records).for_variants();
    let mut public: HashMap<&str, bool> = HashMap::new();
    let mut out = Vec::with_capacity(images.len());
    for image in images {
        let shown = match public.get(image.category.as_str()) {
            Some(&p) => p,
            None => {
                let object = catalog::category_object(&image.category);
                let p = variants.may(catalog, &Actor::Anonymous, Privilege::View, &object)?;
                public.insert(&image.category, p);
                p
            }
        };
        let format = catalog::format_of(&image.mime).map(|f| f.output());
        let thumbnail = match format {
            Some(format) if shown && unsigned => {
                let size = geometry::fit(Size::new(image.width, image.height), bbox, raster);
                Some(Thumbnail {
                    url: format!(
                        "{}/{}/{}/{}.{}",
                        config.cache.url,
                        image.id,
                        size.width,
                        size.height,
                        format.ext()
                    ),
                    width: size.width,
                    height: size.height,
                })
            }
            _ => None,
        };
        out.push(Card {
            id: image.id.as_str().to_string(),
            title: image
                .meta
                .get("title")
                .and_then(|t| t.as_str())
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string),
            category: image.category.clone(),
            width: image.width,
            height: image.height,
            owner: image.owner.clone(),
            created: image.created,
            thumbnail,
        });
    }
    Ok(out)
}

fn check_per_page(per_page: u32) -> Result<(), QueryError> {
    let max = crate::io::config::MAX_DASHBOARD_PER_PAGE;
    if per_page == 0 || per_page > max {
        return Err(QueryError::Invalid {
            name: "per_page",
            reason: format!("expected an integer from 1 to {max}, got {per_page}"),
        });
    }
    Ok(())
}

fn decode(after: Option<&str>, context: &str) -> Result<Option<Position>, QueryError> {
    after.map(|t| cursor::decode(t, context)).transpose()
}

/// The first `per_page` of `rows` (which asked for one more), and the cursor after the last
/// of them when that one more exists.
fn split<T>(
    mut rows: Vec<T>,
    per_page: u32,
    position: impl Fn(&T) -> &Position,
    context: &str,
) -> (Vec<T>, Option<String>) {
    let more = rows.len() > per_page as usize;
    rows.truncate(per_page as usize);
    let next = more
        .then(|| rows.last().map(|r| cursor::encode(position(r), context)))
        .flatten();
    (rows, next)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::domain::principal::{Method, Principal};
    use crate::io::catalog::testing::id;
    use crate::io::catalog::{NewImage, Role};
    use crate::io::config::from_str;

    fn config(dir: &Path, extra: &str) -> Config {
        std::fs::create_dir_all(dir.join("originals")).unwrap();
        let text = format!(
            "[originals]\nroot = \"originals\"\n[state]\ndir = \"state\"\n[cache]\ndir = \"cache\"\n\
             url = \"https://img.example.org/v\"\n{extra}"
        );
        from_str(&text, dir).unwrap()
    }

    fn add(c: &mut Catalog, n: u32, category: &str, meta: serde_json::Value) {
        let serde_json::Value::Object(meta) = meta else {
            panic!()
        };
        c.insert(
            &NewImage {
                id: id(n),
                mime: "image/jpeg".into(),
                width: 4000,
                height: 3000,
                bytes: 10,
                owner: Some("ann".into()),
                category: category.into(),
                meta,
            },
            None,
        )
        .unwrap();
    }

    struct World {
        _t: tempfile::TempDir,
        config: Config,
        records: Records,
        catalog: Catalog,
    }

    /// Public `/open` (and `/open/deep`), and `/private` that inherits nothing: only admins.
    fn world() -> World {
        let t = tempfile::tempdir().unwrap();
        let config = config(
            t.path(),
            "[permissions]\nroot_grants = [\"public view\"]\n[dashboard]\nper_page = 5\n",
        );
        let records = Records::new(&config, false);
        let mut catalog = Catalog::open(&t.path().join("state/catalog.sqlite")).unwrap();
        let perms = Permissions::new(&config, &records);
        perms.seed_root(&mut catalog).unwrap();
        for n in 0..12 {
            let cat = ["/open", "/open/deep", "/private"][n as usize % 3];
            add(
                &mut catalog,
                n,
                cat,
                json!({"title": format!("fjord {n} <script>x</script>"), "secret": n % 3 == 2}),
            );
        }
        perms
            .set_inherit(&mut catalog, &Actor::Operator, "category:/private", false)
            .unwrap();
        World {
            _t: t,
            config,
            records,
            catalog,
        }
    }

    fn listing(category: &str, below: bool, after: Option<String>) -> Listing {
        Listing {
            category: category.into(),
            below,
            order: Order::Newest,
            after,
            per_page: 3,
        }
    }

    /// Every page of a listing as seen by `actor`.
    fn all(w: &World, actor: &Actor, category: &str, below: bool) -> Vec<Image> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let page = list(
                &w.config,
                &w.records,
                &w.catalog,
                actor,
                &listing(category, below, after),
            )
            .unwrap();
            out.extend(page.items);
            match page.next {
                Some(n) => after = Some(n),
                None => return out,
            }
        }
    }

    #[test]
    fn private_images_never_appear_and_counts_exclude_them() {
        let w = world();
        let anon = Actor::Anonymous;
        let root = all(&w, &anon, "/", true);
        assert_eq!(root.len(), 8);
        assert!(root.iter().all(|i| i.category != "/private"));
        assert!(all(&w, &anon, "/private", false).is_empty());
        assert!(all(&w, &anon, "/private", true).is_empty());
        assert_eq!(all(&w, &anon, "/open", false).len(), 4);
        assert_eq!(all(&w, &anon, "/open", true).len(), 8);
        assert_eq!(all(&w, &Actor::Operator, "/", true).len(), 12);
        let admin = Actor::User(Principal::new(
            "root",
            vec![],
            vec![Role::Admin],
            Method::Local,
        ));
        assert_eq!(all(&w, &admin, "/private", false).len(), 4);
        // The tree: counts of what the actor may view only.
        let t = tree(&w.config, &w.records, &w.catalog, &anon).unwrap();
        let counts: Vec<(&str, u64, u64)> = t
            .iter()
            .map(|c| (c.path.as_str(), c.images, c.total))
            .collect();
        assert_eq!(counts, [("/", 0, 8), ("/open", 4, 8), ("/open/deep", 4, 4)]);
        // Search: the same.
        let s = |q: &str, actor: &Actor| {
            find(
                &w.config,
                &w.records,
                &w.catalog,
                actor,
                &Search {
                    q: q.into(),
                    category: None,
                    after: None,
                    per_page: 100,
                },
            )
            .unwrap()
            .items
        };
        assert_eq!(s("fjord", &anon).len(), 8);
        assert!(
            s("fjord", &anon)
                .iter()
                .all(|f| f.image.category != "/private")
        );
        assert_eq!(s("fjord", &Actor::Operator).len(), 12);
    }

    #[test]
    fn everything_below_is_what_the_visible_categories_list_and_no_more() {
        // More categories than the catalog seeks one by one, so that large subtrees are
        // scanned; a private branch, and categories that share its prefix without being in it.
        let w = world();
        let mut catalog = w.catalog;
        let cats = [
            "/open/a",
            "/open/b",
            "/open/c",
            "/open/d",
            "/open/e",
            "/open/f",
            "/open/g",
            "/open/h",
            "/open/i",
            "/private2",
            "/private-x",
            "/private/sub",
            "/open/deep/er",
        ];
        for (n, cat) in (100..).zip(cats.iter().cycle().take(52)) {
            add(
                &mut catalog,
                n,
                cat,
                json!({"title": format!("t{}", n % 7)}),
            );
        }
        let w = World { catalog, ..w };
        let admin = Actor::User(Principal::new(
            "root",
            vec![],
            vec![Role::Admin],
            Method::Local,
        ));
        for actor in [Actor::Anonymous, Actor::Operator, admin] {
            let perms = Permissions::new(&w.config, &w.records);
            let visible = perms.visible_categories(&w.catalog, &actor).unwrap();
            for category in ["/", "/open", "/private", "/private2", "/open/deep"] {
                for order in [Order::Newest, Order::Name] {
                    // What the listing of the visible categories, named one by one, gives.
                    let named: Vec<String> = visible
                        .iter()
                        .filter(|c| c.images > 0)
                        .filter(|c| {
                            category == "/"
                                || c.path == category
                                || c.path.starts_with(&format!("{category}/"))
                        })
                        .map(|c| c.path.clone())
                        .collect();
                    let want: Vec<String> = w
                        .catalog
                        .listing(&named, order, None, catalog::MAX_BROWSE_LIMIT)
                        .unwrap()
                        .into_iter()
                        .map(|l| l.image.id.as_str().to_string())
                        .collect();
                    assert!(want.len() < catalog::MAX_BROWSE_LIMIT as usize);
                    let mut got = Vec::new();
                    let mut after = None;
                    loop {
                        let l = Listing {
                            order,
                            per_page: 4,
                            ..listing(category, true, after)
                        };
                        let page = list(&w.config, &w.records, &w.catalog, &actor, &l).unwrap();
                        got.extend(page.items.into_iter().map(|i| i.id.as_str().to_string()));
                        match page.next {
                            Some(n) => after = Some(n),
                            None => break,
                        }
                    }
                    assert_eq!(got, want, "{actor:?} {category} {order:?}");
                }
            }
        }
    }

    #[test]
    fn cursors_follow_their_listing_only() {
        let w = world();
        let anon = Actor::Anonymous;
        let first = list(
            &w.config,
            &w.records,
            &w.catalog,
            &anon,
            &listing("/open", true, None),
        )
        .unwrap();
        let next = first.next.clone().unwrap();
        // Another category, order or depth: 400 bad-cursor.
        for other in [
            listing("/open/deep", true, Some(next.clone())),
            listing("/open", false, Some(next.clone())),
            Listing {
                order: Order::Name,
                ..listing("/open", true, Some(next.clone()))
            },
            listing("/open", true, Some(format!("{next}A"))),
            listing("/open", true, Some("garbage".into())),
        ] {
            let err = list(&w.config, &w.records, &w.catalog, &anon, &other).unwrap_err();
            assert_eq!((err.status(), err.code()), (400, "bad-cursor"), "{other:?}");
        }
        // The same listing spelled another way is the same listing.
        let again = list(
            &w.config,
            &w.records,
            &w.catalog,
            &anon,
            &listing("open/", true, Some(next)),
        )
        .unwrap();
        assert_eq!(again.items.len(), 3);
        // The end: the last page has no next, and a page past a full last page is empty.
        let per4 = Listing {
            per_page: 4,
            ..listing("/open", true, None)
        };
        let p1 = list(&w.config, &w.records, &w.catalog, &anon, &per4).unwrap();
        let p2 = list(
            &w.config,
            &w.records,
            &w.catalog,
            &anon,
            &Listing {
                after: p1.next.clone(),
                ..per4.clone()
            },
        )
        .unwrap();
        assert_eq!((p2.items.len(), p2.next.as_deref()), (4, None));
        for bad in [0, 101] {
            let err = list(
                &w.config,
                &w.records,
                &w.catalog,
                &anon,
                &Listing {
                    per_page: bad,
                    ..per4.clone()
                },
            )
            .unwrap_err();
            assert_eq!((err.status(), err.code()), (400, "bad-request"));
        }
    }

    #[test]
    fn cards_carry_thumbnails_of_public_images_only() {
        let w = world();
        let op = Actor::Operator;
        let page = browse(
            &w.config,
            &w.records,
            &w.catalog,
            &op,
            &Listing {
                order: Order::Name,
                per_page: 12,
                ..listing("/", true, None)
            },
        )
        .unwrap();
        assert_eq!(page.items.len(), 12);
        let titles: Vec<&str> = page
            .items
            .iter()
            .filter_map(|c| c.title.as_deref())
            .collect();
        let mut sorted = titles.clone();
        sorted.sort_by_key(|t| t.to_ascii_lowercase());
        assert_eq!(titles, sorted, "by name");
        for card in &page.items {
            let thumb = card.thumbnail.as_ref();
            if card.category == "/private" {
                assert!(thumb.is_none(), "{card:?}");
                continue;
            }
            let thumb = thumb.unwrap();
            // 4000x3000 into 240x240 with the default raster of 50: 200 wide, 150 high.
            assert_eq!((thumb.width, thumb.height), (200, 150));
            assert_eq!(
                thumb.url,
                format!("https://img.example.org/v/{}/200/150.jpg", card.id)
            );
        }
        // Signed URLs required: only a preset box gets a URL.
        let t = tempfile::tempdir().unwrap();
        for (extra, some) in [
            ("[security]\nrequire_signed_urls = true\n", false),
            (
                "[security]\nrequire_signed_urls = true\n[presets]\nthumb = [\"240x240\"]\n",
                true,
            ),
        ] {
            let config = config(t.path(), extra);
            let image = w.catalog.get(&id(0)).unwrap().unwrap();
            let card = cards(&config, &w.records, &w.catalog, &[image])
                .unwrap()
                .remove(0);
            assert_eq!(card.thumbnail.is_some(), some, "{extra}");
        }
    }

    #[test]
    fn search_pages_and_highlights_markup_as_text() {
        let w = world();
        let op = Actor::Operator;
        let search_page = |after| {
            search(
                &w.config,
                &w.records,
                &w.catalog,
                &op,
                &Search {
                    q: "  script  ".into(),
                    category: Some("/open".into()),
                    after,
                    per_page: 3,
                },
            )
            .unwrap()
        };
        let p1 = search_page(None);
        assert_eq!(p1.items.len(), 3);
        let p2 = search_page(p1.next.clone());
        let p3 = search_page(p2.next.clone());
        assert_eq!(
            (p2.items.len(), p3.items.len(), p3.next.as_deref()),
            (3, 2, None)
        );
        let mut ids: Vec<&str> = [&p1, &p2, &p3]
            .iter()
            .flat_map(|p| p.items.iter().map(|f| f.image.id.as_str()))
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 8, "no page overlaps another");
        let found = &p1.items[0];
        let text: String = found.snippet.iter().map(|f| f.text.as_str()).collect();
        assert!(text.contains("<script>x</script>"), "{text}");
        assert!(
            found
                .snippet
                .iter()
                .any(|f| f.is_match && f.text == "script")
        );
        assert!(
            found
                .snippet
                .iter()
                .all(|f| !f.is_match || f.text == "script")
        );
        // The same words spelled with other spaces continue; other words do not.
        let more = search(
            &w.config,
            &w.records,
            &w.catalog,
            &op,
            &Search {
                q: "fjord".into(),
                category: Some("/open".into()),
                after: p1.next.clone(),
                per_page: 3,
            },
        )
        .unwrap_err();
        assert_eq!((more.status(), more.code()), (400, "bad-cursor"));
    }
}
