//! Putting a user's name into LDAP text: a filter value (RFC 4515) and a DN attribute value
//! (RFC 4514), and the `{user}` / `{dn}` templates of `[ldap]` filled with escaped values.
//! Pure; nothing here talks to a directory.

/// `value` as an RFC 4515 assertion value: `*`, `(`, `)`, `\` and NUL become `\2a`, `\28`,
/// `\29`, `\5c`, `\00`, so a name such as `*` or `)(uid=*` matches only itself.
pub fn filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '*' => out.push_str("\\2a"),
            '(' => out.push_str("\\28"),
            ')' => out.push_str("\\29"),
            '\\' => out.push_str("\\5c"),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

/// `value` as an RFC 4514 attribute value inside a DN: `"`, `+`, `,`, `;`, `<`, `>`, `=`, `\`
/// and NUL escaped as `\XX`, and a leading space or `#` and a trailing space too, so a name such
/// as `alice,ou=admins` stays one value of one RDN.
pub fn dn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '=' | '\\' | '\0')
            || (i == 0 && matches!(c, ' ' | '#'))
            || (i == last && c == ' ');
        if special {
            out.push_str(&format!("\\{:02x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// `template` with every `{user}` replaced by `user` and every `{dn}` by `dn`, each escaped by
/// `escape`. The template itself is the operator's and is taken as written.
pub fn fill(template: &str, user: &str, dn: &str, escape: fn(&str) -> String) -> String {
    template
        .replace("{user}", &escape(user))
        .replace("{dn}", &escape(dn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_values_cannot_change_the_filter() {
        for (value, want) in [
            ("alice", "alice"),
            ("*", "\\2a"),
            (")(uid=*", "\\29\\28uid=\\2a"),
            ("a\\b", "a\\5cb"),
            ("nul\0x", "nul\\00x"),
            (
                "*)(|(objectClass=*)",
                "\\2a\\29\\28|\\28objectClass=\\2a\\29",
            ),
            ("zoë", "zoë"),
        ] {
            assert_eq!(filter_value(value), want, "{value:?}");
        }
        assert_eq!(
            fill(
                "(&(uid={user})(!(employeeType=disabled)))",
                "*",
                "",
                filter_value
            ),
            "(&(uid=\\2a)(!(employeeType=disabled)))"
        );
    }

    #[test]
    fn dn_values_stay_one_value() {
        for (value, want) in [
            ("alice", "alice"),
            ("alice,ou=admins", "alice\\2cou\\3dadmins"),
            ("a+b", "a\\2bb"),
            (" lead", "\\20lead"),
            ("#x", "\\23x"),
            ("trail ", "trail\\20"),
            ("in side", "in side"),
            ("q\"<>;", "q\\22\\3c\\3e\\3b"),
            ("back\\slash", "back\\5cslash"),
            ("nul\0", "nul\\00"),
            ("*", "*"),
        ] {
            assert_eq!(dn_value(value), want, "{value:?}");
        }
        assert_eq!(
            fill(
                "uid={user},ou=people,dc=example,dc=org",
                "x,dc=org",
                "",
                dn_value
            ),
            "uid=x\\2cdc\\3dorg,ou=people,dc=example,dc=org"
        );
    }

    #[test]
    fn templates_take_the_dn_escaped_too() {
        assert_eq!(
            fill(
                "(|(member={dn})(memberUid={user}))",
                "a*",
                "uid=a\\2a,ou=people",
                filter_value
            ),
            "(|(member=uid=a\\5c2a,ou=people)(memberUid=a\\2a))"
        );
    }
}
