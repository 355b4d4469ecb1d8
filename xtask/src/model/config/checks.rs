//! What a configured value may be, beyond its type: names PostgreSQL reserves, image
//! references as Docker parses them, host names nginx can match, the range of CPUs.
//! Pure functions, used by the configuration's checker and by the images manifest.

/// The range of `resources.*.cpus` (Docker's smallest quota is 0.01 CPU).
pub const MIN_CPUS: f64 = 0.01;
pub const MAX_CPUS: f64 = 1024.0;

/// Role names PostgreSQL reserves besides `pg_*`: the superuser of the image's
/// cluster, and the names `CREATE ROLE` refuses.
pub const RESERVED_ROLES: &[&str] = &["postgres", "public", "none"];

/// Database names the cluster already has.
pub const RESERVED_DATABASES: &[&str] = &["postgres", "template0", "template1"];

/// PostgreSQL's reserved key words (its documentation's Appendix C, "reserved" and
/// "reserved, can be function or type"): unquoted, none of them names a role or a
/// database.
pub const SQL_RESERVED_WORDS: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "binary",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "group",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "intersect",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "natural",
    "not",
    "notnull",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "outer",
    "overlaps",
    "placing",
    "primary",
    "references",
    "returning",
    "right",
    "select",
    "session_user",
    "similar",
    "some",
    "symmetric",
    "system_user",
    "table",
    "tablesample",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
];

/// An image repository name as Docker parses it (distribution's reference grammar):
/// `[domain[:port]/]component(/component)*`, components lowercase alphanumerics joined
/// by `.`, `_`, `__` or dashes.
pub fn check_image_repository(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name.len() > 255 {
        return Err("it is longer than 255 characters".into());
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    let first = parts[0];
    if parts.len() > 1 && (first.contains('.') || first.contains(':') || first == "localhost") {
        let (domain, port) = first.split_once(':').map_or((first, None), |(d, p)| (d, Some(p)));
        let domain_ok = domain.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
        let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit()));
        if !domain_ok || !port_ok {
            return Err(format!("`{first}` is not a registry host[:port]"));
        }
        parts.remove(0);
    }
    for component in parts {
        let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        let valid = component.starts_with(alnum)
            && component.ends_with(alnum)
            && component.chars().all(|c| alnum(c) || "._-".contains(c))
            && !component.contains("..")
            && !component.contains("._")
            && !component.contains("_.")
            && !component.contains("___")
            && !component.contains(".-")
            && !component.contains("-.")
            && !component.contains("_-")
            && !component.contains("-_");
        if !valid {
            return Err(format!(
                "`{component}` must be lowercase letters and digits, joined by `.`, `_` or `-`, beginning and ending \
                 with a letter or digit"
            ));
        }
    }
    Ok(())
}

/// An image reference: a repository, then optionally `:tag` and `@algorithm:hex`.
pub fn check_image_reference(reference: &str) -> Result<(), String> {
    let (rest, digest) = reference.split_once('@').map_or((reference, None), |(r, d)| (r, Some(d)));
    if let Some(digest) = digest {
        let valid = digest.split_once(':').is_some_and(|(algorithm, hex)| {
            !algorithm.is_empty()
                && algorithm.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c))
                && hex.len() >= 32
                && hex.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        });
        if !valid {
            return Err(format!("`@{digest}` is not a digest such as @sha256:<64 hex digits>"));
        }
    }
    let last_slash = rest.rfind('/').map_or(0, |at| at + 1);
    let (repository, tag) = match rest[last_slash..].rfind(':') {
        Some(at) => (&rest[..last_slash + at], Some(&rest[last_slash + at + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        let mut chars = tag.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            && tag.len() <= 128;
        if !valid {
            return Err(format!("`:{tag}` is not a tag (letters, digits, `_`, `.`, `-`, at most 128)"));
        }
    }
    check_image_repository(repository)
}

/// A name nginx can match a Host header against: a lowercase DNS name or an IPv4
/// address.
pub fn is_server_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `512m` → 536870912. Units b, k, m, g (either case, optional trailing `b`).
pub fn parse_size(text: &str) -> Option<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix('b').filter(|rest| rest.ends_with(['k', 'm', 'g'])).unwrap_or(&lower);
    let (digits, unit) = match lower.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => lower.split_at(at),
        None => (lower, ""),
    };
    let number: u64 = digits.parse().ok()?;
    let factor = match unit {
        "" | "b" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(factor)
}
