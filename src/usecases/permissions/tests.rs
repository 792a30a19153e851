use std::path::Path;

use serde_json::Map;

use super::*;
use crate::io::catalog::NewImage;
use crate::io::catalog::testing::{id, made_before_migrations};
use crate::io::config::from_str;

/// A configuration (with a memory object cache, so that caching is exercised) in `dir`.
fn config(dir: &Path, extra: &str) -> Config {
    std::fs::create_dir_all(dir.join("originals")).unwrap();
    let text = format!(
        "[originals]\nroot = \"originals\"\n[state]\ndir = \"state\"\n[cache]\ndir = \"cache\"\n\
         [object_cache]\ntype = \"memory\"\n{extra}"
    );
    from_str(&text, dir).unwrap()
}

fn who(name: &str, groups: &[&str], role: Role) -> Principal {
    let groups = groups.iter().map(|g| g.to_string()).collect();
    Principal::new(name, groups, vec![role], Method::Local)
}

fn grant(text: &str) -> Grant {
    crate::io::config::parse_grant(text).unwrap()
}

fn image(n: u32, category: &str, owner: Option<&str>) -> NewImage {
    NewImage {
        id: id(n),
        mime: "image/png".into(),
        width: 2,
        height: 2,
        bytes: 10,
        owner: owner.map(String::from),
        category: category.into(),
        meta: Map::new(),
    }
}

#[test]
fn key_rights_map_to_privileges() {
    use Privilege::*;
    let cases = [
        (Rights::READ, Some(View)),
        (Rights::WRITE, Some(Edit)),
        (Rights::DELETE, Some(Edit)),
        (Rights::READ | Rights::DELETE, Some(Edit)),
        (Rights::ADMIN, Some(Admin)),
        (Rights::NONE, None),
    ];
    for (rights, want) in cases {
        assert_eq!(key_privilege(rights), want, "{rights}");
    }
}

#[test]
fn keys_of_an_upgraded_catalog_keep_doing_what_they_did() {
    let t = tempfile::tempdir().unwrap();
    let config = config(t.path(), "");
    let path = t.path().join("catalog.sqlite");
    let old_keys = made_before_migrations(&path, 2);
    let mut c = Catalog::open(&path).unwrap();
    let records = Records::new(&config, true);
    let perms = Permissions::new(&config, &records);
    perms.seed_root(&mut c).unwrap();
    for k in &old_keys {
        let principal = perms
            .principal_of(&c, k.user, Method::Key)
            .unwrap()
            .unwrap();
        assert_eq!(principal.roles, [Role::Editor], "{}", k.id);
        let actor = Actor::Key {
            principal,
            rights: k.rights,
        };
        for object in ["category:/", "category:/travel/norway"] {
            let may = |p| perms.may(&c, &actor, p, object).unwrap();
            // Reads where the key reads, writes and deletes (edit) where it did.
            assert_eq!(may(Privilege::View), k.rights != Rights::NONE, "{}", k.id);
            let writes = k.rights.contains(Rights::WRITE) || k.rights.contains(Rights::DELETE);
            assert_eq!(may(Privilege::Edit), writes, "{} {object}", k.id);
            // An editor's key never administers (admin was about users and keys).
            assert!(!may(Privilege::Admin), "{}", k.id);
        }
    }
}

#[test]
fn a_private_category_in_a_public_one() {
    let t = tempfile::tempdir().unwrap();
    let config = config(t.path(), "[api]\npublic_reads = true\n");
    let mut c = Catalog::open(&config.state.catalog_path()).unwrap();
    let records = Records::new(&config, true);
    let perms = Permissions::new(&config, &records);
    c.add_user("bob").unwrap();
    c.add_user_with("vi", Role::Viewer, None).unwrap();
    let op = Actor::Operator;
    perms
        .set_inherit(&mut c, &op, "category:/travel/private", false)
        .unwrap();
    perms
        .grant(
            &mut c,
            &op,
            "category:/travel/private",
            &grant("user:bob view"),
        )
        .unwrap();
    let anon = Actor::Anonymous;
    let vi = Actor::User(who("vi", &[], Role::Viewer));
    let bob = Actor::User(who("bob", &[], Role::Editor));
    let ed = Actor::User(who("ed", &[], Role::Editor));
    let view = Privilege::View;
    // (who, object, may view)
    let cases = [
        (&anon, "category:/travel", true),
        (&anon, "category:/travel/private", false),
        (&anon, "category:/travel/private/deeper", false),
        (&vi, "category:/travel", true),
        (&vi, "category:/travel/private", false),
        (&ed, "category:/travel/private", false),
        (&bob, "category:/travel/private/deeper", true),
        (&op, "category:/travel/private", true),
    ];
    for (actor, object, want) in cases {
        assert_eq!(
            perms.may(&c, actor, view, object).unwrap(),
            want,
            "{actor:?} {object}"
        );
    }
    // Nobody logged in is asked to; a user is refused.
    let e = perms
        .require(&c, &anon, view, "category:/travel/private")
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (401, "login-required"));
    let e = perms
        .require(&c, &ed, view, "category:/travel/private")
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (403, "permission-denied"));
    // Why: the grant and where it comes from.
    let (p, why) = perms
        .explain(&c, &bob, "category:/travel/private/deeper")
        .unwrap()
        .unwrap();
    assert_eq!(
        (p, why.to_string()),
        (view, "view to user:bob on category:/travel/private".into())
    );
    let (_, why) = perms
        .explain(&c, &anon, "category:/travel")
        .unwrap()
        .unwrap();
    assert_eq!(why.to_string(), "view to public on category:/");
    // Searches and the category tree leave the private category out.
    for (n, cat) in [
        (1, "/travel"),
        (2, "/travel/private"),
        (3, "/travel/private"),
    ] {
        c.insert(&image(n, cat, None), None).unwrap();
    }
    assert_eq!(
        perms.hidden_categories(&c, &anon).unwrap(),
        ["/travel/private"]
    );
    assert!(perms.hidden_categories(&c, &bob).unwrap().is_empty());
    let tree: Vec<(String, u64, u64)> = perms
        .visible_categories(&c, &anon)
        .unwrap()
        .into_iter()
        .map(|c| (c.path, c.images, c.total))
        .collect();
    assert_eq!(tree, [("/".into(), 0, 1), ("/travel".into(), 1, 1)]);
    let all = perms.visible_categories(&c, &op).unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].total, 3);
}

#[test]
fn grants_need_admin_and_changes_reach_cached_answers() {
    let t = tempfile::tempdir().unwrap();
    let config = config(t.path(), "");
    let mut c = Catalog::open(&config.state.catalog_path()).unwrap();
    let records = Records::new(&config, true);
    let perms = Permissions::new(&config, &records);
    c.add_user_with("vi", Role::Viewer, None).unwrap();
    c.add_user("ann").unwrap();
    c.add_group("staff").unwrap();
    let vi = perms
        .principal_of(&c, "vi", Method::Local)
        .unwrap()
        .unwrap();
    let vi_actor = Actor::User(vi);
    let object = "category:/team";
    assert!(!perms.may(&c, &vi_actor, Privilege::Edit, object).unwrap());
    // A viewer may not grant; an editor neither (edit is not admin).
    let ann = Actor::User(who("ann", &[], Role::Editor));
    for by in [&vi_actor, &ann] {
        let e = perms
            .grant(&mut c, by, object, &grant("group:staff edit"))
            .unwrap_err();
        assert_eq!(e.code(), "permission-denied");
    }
    perms
        .grant(&mut c, &Actor::Operator, object, &grant("user:ann admin"))
        .unwrap();
    // Ann administers /team now: she may grant there (anything), not elsewhere.
    perms
        .grant(&mut c, &ann, "category:/team/x", &grant("group:staff edit"))
        .unwrap();
    let e = perms
        .grant(&mut c, &ann, "category:/other", &grant("group:staff edit"))
        .unwrap_err();
    assert_eq!(e.code(), "permission-denied");
    assert_eq!(
        c.grants_on("category:/team/x").unwrap()[0]
            .granted_by
            .as_deref(),
        Some("ann")
    );
    // A group change reaches an existing member at once (the principal is re-read: the
    // generation changed).
    assert!(
        !perms
            .may(&c, &vi_actor, Privilege::Edit, "category:/team/x")
            .unwrap()
    );
    c.add_member("staff", "vi").unwrap();
    perms.changed();
    let vi = perms
        .principal_of(&c, "vi", Method::Local)
        .unwrap()
        .unwrap();
    assert_eq!(vi.groups, ["staff"]);
    let vi_actor = Actor::User(vi);
    assert!(
        perms
            .may(&c, &vi_actor, Privilege::Edit, "category:/team/x")
            .unwrap()
    );
    // A cached answer is forgotten by a revoke through here...
    perms
        .revoke(
            &mut c,
            &ann,
            "category:/team/x",
            &"group:staff".parse().unwrap(),
        )
        .unwrap();
    assert!(
        !perms
            .may(&c, &vi_actor, Privilege::Edit, "category:/team/x")
            .unwrap()
    );
    // ...and it was cached: a write behind the use case's back is not seen until then.
    c.grant("category:/team/x", &grant("user:vi edit"), None)
        .unwrap();
    assert!(
        !perms
            .may(&c, &vi_actor, Privilege::Edit, "category:/team/x")
            .unwrap()
    );
    perms.changed();
    assert!(
        perms
            .may(&c, &vi_actor, Privilege::Edit, "category:/team/x")
            .unwrap()
    );
    // Bad names are 400s, unknown grantees 404s.
    let e = perms
        .grant(&mut c, &Actor::Operator, "album:1", &grant("public view"))
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (400, "bad-object"));
    let e = perms
        .grant(&mut c, &Actor::Operator, object, &grant("user:nobody view"))
        .unwrap_err();
    assert_eq!((e.status(), e.code()), (404, "user-not-found"));
    // inherit = false needs admin too, and cuts the editor role.
    let e = perms
        .set_inherit(&mut c, &vi_actor, object, false)
        .unwrap_err();
    assert_eq!(e.code(), "permission-denied");
    let ed = Actor::User(who("ed", &[], Role::Editor));
    assert!(perms.may(&c, &ed, Privilege::Edit, object).unwrap());
    perms.set_inherit(&mut c, &ann, object, false).unwrap();
    assert!(!perms.may(&c, &ed, Privilege::View, object).unwrap());
    assert!(perms.may(&c, &ann, Privilege::Admin, object).unwrap());
}

#[test]
fn a_key_acts_with_at_most_its_users_privilege() {
    let t = tempfile::tempdir().unwrap();
    let config = config(t.path(), "");
    let c = Catalog::open(&config.state.catalog_path()).unwrap();
    let records = Records::new(&config, true);
    let perms = Permissions::new(&config, &records);
    let key = |role, rights| Actor::Key {
        principal: who("k", &[], role),
        rights,
    };
    let all = Rights::READ | Rights::WRITE | Rights::DELETE | Rights::ADMIN;
    let cases = [
        (Role::Viewer, all, Some(Privilege::View)),
        (Role::Editor, all, Some(Privilege::Edit)),
        (Role::Admin, all, Some(Privilege::Admin)),
        (Role::Admin, Rights::READ, Some(Privilege::View)),
        (Role::Editor, Rights::DELETE, Some(Privilege::Edit)),
    ];
    for (role, rights, want) in cases {
        let got = perms
            .explain(&c, &key(role, rights), "category:/a")
            .unwrap();
        assert_eq!(got.map(|g| g.0), want, "{role} {rights}");
    }
}

#[test]
fn the_creator_holds_the_configured_privilege() {
    let t = tempfile::tempdir().unwrap();
    let config = config(
        t.path(),
        "[permissions]\nprivilege_for_creator = \"admin\"\nroot_grants = [\"registered view\"]\n",
    );
    let mut c = Catalog::open(&config.state.catalog_path()).unwrap();
    let records = Records::new(&config, true);
    let perms = Permissions::new(&config, &records);
    perms.seed_root(&mut c).unwrap();
    c.add_user_with("cat", Role::Viewer, None).unwrap();
    c.insert_granting(
        &image(1, "/cats", Some("cat")),
        None,
        config.permissions.privilege_for_creator,
    )
    .unwrap();
    c.insert(&image(2, "/dogs", Some("dog")), None).unwrap();
    let cat = Actor::User(who("cat", &[], Role::Viewer));
    // The category she made is hers; another is only viewable (registered view at the root).
    assert!(
        perms
            .may(&c, &cat, Privilege::Admin, "category:/cats")
            .unwrap()
    );
    assert!(
        !perms
            .may(&c, &cat, Privilege::Edit, "category:/dogs")
            .unwrap()
    );
    // An image she owns in someone else's category: the creator's privilege on it.
    let mut theirs = c.get(&id(2)).unwrap().unwrap();
    theirs.owner = Some("cat".into());
    let (p, why) = perms.explain_image(&c, &cat, &theirs).unwrap().unwrap();
    assert_eq!(p, Privilege::Admin);
    assert_eq!(why.to_string(), format!("the creator of image:{}", id(2)));
    // A key caps it.
    let key = Actor::Key {
        principal: who("cat", &[], Role::Viewer),
        rights: Rights::READ,
    };
    assert!(
        perms
            .require_image(&c, &key, Privilege::Edit, &theirs)
            .is_err()
    );
    assert!(
        perms
            .require_image(&c, &key, Privilege::View, &theirs)
            .is_ok()
    );
    // Searches: nothing hidden from a registered user (the root's grant, no inherit = false:
    // the category scan is skipped); everything from nobody (public_reads is off).
    assert!(perms.hidden_categories(&c, &cat).unwrap().is_empty());
    assert_eq!(
        perms.hidden_categories(&c, &Actor::Anonymous).unwrap(),
        ["/cats", "/dogs"]
    );
    // Not the owner: the category's.
    theirs.owner = Some("dog".into());
    let (p, _) = perms.explain_image(&c, &cat, &theirs).unwrap().unwrap();
    assert_eq!(p, Privilege::View);
}

#[test]
fn describe_shows_grants_to_administrators_only() {
    let t = tempfile::tempdir().unwrap();
    let config = config(t.path(), "[api]\npublic_reads = true\n");
    let mut c = Catalog::open(&config.state.catalog_path()).unwrap();
    let records = Records::new(&config, true);
    let perms = Permissions::new(&config, &records);
    c.add_user("ann").unwrap();
    let op = Actor::Operator;
    perms
        .grant(&mut c, &op, "category:/a", &grant("user:ann admin"))
        .unwrap();
    perms
        .grant(&mut c, &op, "category:/a/b", &grant("registered edit"))
        .unwrap();
    let ann = Actor::User(who("ann", &[], Role::Editor));
    let d = perms.describe(&c, &ann, "category:a/b/").unwrap();
    assert_eq!(d.object, "category:/a/b");
    assert_eq!(d.privilege, Some(Privilege::Admin));
    assert_eq!(
        d.reason.as_deref(),
        Some("admin to user:ann on category:/a")
    );
    let own = d.grants.unwrap();
    assert_eq!(
        (own[0].grantee.as_str(), own[0].privilege),
        ("registered", Privilege::Edit)
    );
    let inherited: Vec<(String, String, bool)> = d
        .inherited
        .unwrap()
        .into_iter()
        .map(|s| (s.object, s.grantee, s.implicit))
        .collect();
    assert_eq!(
        inherited,
        [
            ("category:/a".into(), "user:ann".into(), false),
            ("category:/".into(), "public".into(), true)
        ]
    );
    let anon = perms
        .describe(&c, &Actor::Anonymous, "category:/a/b")
        .unwrap();
    assert_eq!(anon.privilege, Some(Privilege::View));
    assert!(anon.grants.is_none() && anon.inherited.is_none());
}

#[test]
fn cached_answers_round_trip() {
    let reasons = [
        None,
        Some((Privilege::Admin, Reason::AdminRole)),
        Some((Privilege::Edit, Reason::Role(Role::Editor))),
        Some((
            Privilege::View,
            Reason::Creator {
                object: "image:x".into(),
            },
        )),
        Some((
            Privilege::View,
            Reason::Grant {
                grant: grant("group:a view"),
                object: "category:/日本 語/x".into(),
            },
        )),
    ];
    for r in reasons {
        let text = serde_json::to_string(&Cached(r.clone())).unwrap();
        let back: Cached = serde_json::from_str(&text).unwrap();
        assert_eq!(back.0, r, "{text}");
    }
}
