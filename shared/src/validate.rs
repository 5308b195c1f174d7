//! Collects every bad field of a request into one INVALID_ARGUMENT, naming
//! each field by its path (`measure.hs_codes[2]`), so a client fixes all of
//! them at once (AIP-193).

use std::{collections::HashSet, hash::Hash};

use crate::{
    error::{Error, FieldViolation},
    types::quote,
};

/// The limits of every request, checked before any work that
/// grows with a list, and before any database work.
pub mod limits {
    /// HS prefixes on a measure or a dispute.
    pub const HS_CODES: usize = 5_000;
    /// Economies in any list.
    pub const ECONOMIES: usize = 300;
    /// Items on a session's agenda.
    pub const AGENDA_ITEMS: usize = 100;
    /// Ids in any list of links.
    pub const LINKED_IDS: usize = 100;
    /// Participants of a session.
    pub const PARTICIPANTS: usize = 200;
    /// Paths in an update mask.
    pub const MASK_PATHS: usize = 50;
    /// Field violations listed in one error; the rest are counted.
    pub const VIOLATIONS: usize = 100;
}

/// The violations found so far in one request: the first
/// [`limits::VIOLATIONS`] listed, the rest counted.
#[derive(Debug, Default)]
pub struct Violations {
    listed: Vec<FieldViolation>,
    omitted: usize,
}

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a violation of `field`.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        if self.listed.len() < limits::VIOLATIONS {
            self.listed.push(FieldViolation::new(field, description));
        } else {
            self.omitted += 1;
        }
    }

    /// The value when `result` is Ok; otherwise records why under `field`.
    pub fn check<T>(&mut self, field: impl Into<String>, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(description) => {
                self.add(field, description);
                None
            }
        }
    }

    /// An optional field: empty means absent (`Some(None)`); otherwise the
    /// parsed value, or `None` with the reason recorded under `field`.
    pub fn optional<T>(
        &mut self,
        field: impl Into<String>,
        raw: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<Option<T>> {
        if raw.is_empty() { Some(None) } else { self.check(field, parse(raw)).map(Some) }
    }

    /// A filter field: empty means any (`None`); a bad value is recorded.
    pub fn filter<T>(
        &mut self,
        field: impl Into<String>,
        raw: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        self.optional(field, raw, parse).flatten()
    }

    /// A field whose empty value stands for `default`.
    pub fn or_default<T>(
        &mut self,
        field: impl Into<String>,
        raw: &str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        self.optional(field, raw, parse).map(|v| v.unwrap_or(default))
    }

    /// Whether `values` has at most `max` elements; otherwise records it
    /// under `field`, so the elements need not be read at all.
    pub fn count<T>(&mut self, field: &str, values: &[T], max: usize) -> bool {
        if values.len() > max {
            self.add(field, format!("has {} elements; at most {max} are allowed", values.len()));
            false
        } else {
            true
        }
    }

    /// Parses every element of `values` (at most `max` of them) with
    /// `parse`, naming bad ones `field[i]`, and refuses duplicates; linear in
    /// the length of the list.
    pub fn list<T: Eq + Hash + Clone>(
        &mut self,
        field: &str,
        values: &[String],
        max: usize,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Vec<T> {
        if !self.count(field, values, max) {
            return Vec::new();
        }
        let mut seen: HashSet<T> = HashSet::with_capacity(values.len());
        let mut out: Vec<T> = Vec::with_capacity(values.len());
        for (i, raw) in values.iter().enumerate() {
            if let Some(v) = self.check(format!("{field}[{i}]"), parse(raw)) {
                if seen.insert(v.clone()) {
                    out.push(v);
                } else {
                    self.add(format!("{field}[{i}]"), format!("{} is listed twice", quote(raw)));
                }
            }
        }
        out
    }

    /// A required, trimmed text of at most `max` characters.
    pub fn text(&mut self, field: &str, value: &str, max: usize) -> Option<String> {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            self.add(field, "is required");
            None
        } else {
            self.optional_text(field, trimmed, max)
        }
    }

    /// An optional text of at most `max` characters, free of control
    /// characters (see [`forbidden_char`]).
    pub fn optional_text(&mut self, field: &str, value: &str, max: usize) -> Option<String> {
        // Four bytes per character at most: longer is too long unread.
        if value.len() > max.saturating_mul(4) || value.chars().count() > max {
            self.add(field, format!("is longer than {max} characters"));
            return None;
        }
        if let Some((at, c)) = value.chars().enumerate().find(|(_, c)| forbidden_char(*c)) {
            self.add(field, format!("contains the control character U+{:04X} at character {at}", u32::from(c)));
            return None;
        }
        Some(value.trim().to_owned())
    }

    /// An optional http(s) URL.
    pub fn url(&mut self, field: &str, value: &str) -> Option<String> {
        if value.is_empty() {
            return Some(String::new());
        }
        let ok = (value.starts_with("https://") || value.starts_with("http://"))
            && value.len() <= 2048
            && !value.chars().any(|c| c.is_whitespace() || c.is_control() || forbidden_char(c));
        if ok {
            Some(value.to_owned())
        } else {
            self.add(field, format!("{} is not an http(s) URL", quote(value)));
            None
        }
    }

    /// Applies the rules between a value's fields once each field is valid
    /// on its own (a list that parsed short would mislead them), naming each
    /// violation `{prefix}.{field}`; the value when it was built.
    pub fn rules<T>(&mut self, prefix: &str, value: T, rules: impl FnOnce(&T) -> Vec<FieldViolation>) -> Option<T> {
        if !self.is_empty() {
            return None;
        }
        for violation in rules(&value) {
            self.add(format!("{prefix}.{}", violation.field), violation.description);
        }
        Some(value)
    }

    pub fn is_empty(&self) -> bool {
        self.listed.is_empty()
    }

    /// Ok when nothing was found; otherwise the INVALID_ARGUMENT error.
    pub fn finish(self) -> Result<(), Error> {
        if self.listed.is_empty() { Ok(()) } else { Err(Error::invalid_with_omitted(self.listed, self.omitted)) }
    }

    /// Like [`finish`](Self::finish), returning `value` when every field was good.
    /// `value` is built from the `Option`s that `check` returned, so it is
    /// `Some` exactly when nothing was recorded.
    pub fn finish_with<T>(self, value: Option<T>) -> Result<T, Error> {
        match (self.finish(), value) {
            (Ok(()), Some(v)) => Ok(v),
            (Err(e), _) => Err(e),
            (Ok(()), None) => Err(Error::internal(anyhow::anyhow!("validation produced no value and no violation"))),
        }
    }
}

/// The paths of an update mask (AIP-134): at least one, at most
/// [`limits::MASK_PATHS`], each updatable on a `resource`; `refused` lists the
/// fields that change only through a method of their own, with that method.
pub fn update_mask(
    v: &mut Violations,
    mask: Option<&prost_types::FieldMask>,
    resource: &str,
    is_updatable: impl Fn(&str) -> bool,
    refused: &[(&str, &str)],
) -> Vec<String> {
    let paths = mask.map(|m| m.paths.as_slice()).unwrap_or_default();
    if paths.is_empty() {
        v.add("update_mask", "names no field: list the fields to update");
        return Vec::new();
    }
    if !v.count("update_mask.paths", paths, limits::MASK_PATHS) {
        return Vec::new();
    }
    for (i, path) in paths.iter().enumerate() {
        if !is_updatable(path) {
            let why = match refused.iter().find(|(field, _)| field == path) {
                Some((field, method)) => format!("{field:?} changes only through {method}"),
                None => format!("{} is not an updatable field of a {resource}", quote(path)),
            };
            v.add(format!("update_mask.paths[{i}]"), why);
        }
    }
    paths.to_vec()
}

/// A request's one required id, named `field` when it is bad.
pub fn id(field: &str, raw: &str) -> Result<uuid::Uuid, Error> {
    let mut v = Violations::new();
    let id = v.check(field, crate::types::parse_id(raw));
    v.finish_with(id)
}

/// A proto enum the client must set: 0 (`…_UNSPECIFIED`) and numbers this
/// server does not know are refused. `parse` maps a number to the domain value.
pub fn required_enum<T>(v: &mut Violations, field: &str, raw: i32, parse: impl Fn(i32) -> Option<T>) -> Option<T> {
    if raw == 0 {
        v.add(field, "is required");
        return None;
    }
    let value = parse(raw);
    if value.is_none() {
        v.add(field, format!("{raw} is not one of its values"));
    }
    value
}

/// A proto enum used as a filter: 0 (`…_UNSPECIFIED`) means any.
pub fn optional_enum<T>(v: &mut Violations, field: &str, raw: i32, parse: impl Fn(i32) -> Option<T>) -> Option<T> {
    if raw == 0 { None } else { required_enum(v, field, raw, parse) }
}

/// Characters no text may hold: NUL and the other C0 controls but tab, LF
/// and CR; DEL; and the Unicode bidi embeddings, overrides and isolates,
/// which can make stored text read differently from what it is.
pub fn forbidden_char(c: char) -> bool {
    (c < ' ' && !matches!(c, '\t' | '\n' | '\r'))
        || c == '\u{7f}'
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A `page_size`: 0 means the default of 50; larger than 500 is capped;
/// negative is INVALID_ARGUMENT (AIP-158).
pub fn page_size(v: &mut Violations, value: i32) -> u64 {
    match value {
        0 => 50,
        n if n < 0 => {
            v.add("page_size", "must not be negative");
            50
        }
        n => u64::try_from(n.min(500)).unwrap_or(500),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::HsCode;

    #[test]
    fn every_bad_element_is_named_by_index() {
        let mut v = Violations::new();
        let codes = ["8703".to_owned(), "87x".to_owned(), "8703".to_owned(), "72".to_owned()];
        let parsed = v.list("measure.hs_codes", &codes, 10, HsCode::parse);
        assert_eq!(parsed.len(), 2);
        let err = v.finish().err().map(|e| e.violations().iter().map(|f| f.field.clone()).collect::<Vec<_>>());
        assert_eq!(err, Some(vec!["measure.hs_codes[1]".to_owned(), "measure.hs_codes[2]".to_owned()]));
    }

    #[test]
    fn a_list_over_its_limit_is_refused_unread() {
        let mut v = Violations::new();
        let codes = vec!["not a code".to_owned(); 1_000_001];
        assert!(v.list("measure.hs_codes", &codes, limits::HS_CODES, HsCode::parse).is_empty());
        let err = v.finish().err().map(|e| e.violations().to_vec()).unwrap_or_default();
        assert_eq!(err.len(), 1);
        assert_eq!(err[0].field, "measure.hs_codes");
        assert!(err[0].description.contains("1000001"), "{}", err[0].description);
    }

    #[test]
    fn every_repeat_in_a_full_list_is_named() {
        let mut v = Violations::new();
        let distinct: Vec<String> = (0..2_500).map(|i| format!("{:010}", i * 100)).collect();
        assert_eq!(v.list("hs_codes", &distinct, limits::HS_CODES, HsCode::parse).len(), 2_500);
        assert!(v.is_empty());
        let twice: Vec<String> = distinct.iter().chain(distinct.iter()).cloned().collect();
        assert_eq!(v.list("hs_codes", &twice, limits::HS_CODES, HsCode::parse).len(), 2_500);
        let err = v.finish().err();
        assert_eq!(err.as_ref().map(|e| e.violations()[0].field.as_str()), Some("hs_codes[2500]"));
        let omitted = err.and_then(|e| e.metadata().get("omitted_violations").cloned());
        assert_eq!(omitted.as_deref(), Some("2400"), "2,500 repeats: 100 listed, the rest counted");
    }

    #[test]
    fn at_most_a_hundred_violations_are_listed_and_the_rest_counted() {
        let mut v = Violations::new();
        let codes = vec!["x".to_owned(); 250];
        v.list("hs_codes", &codes, limits::HS_CODES, HsCode::parse);
        let err = v.finish().err();
        assert_eq!(err.as_ref().map(|e| e.violations().len()), Some(limits::VIOLATIONS));
        let message = err.as_ref().map(|e| e.message().to_owned()).unwrap_or_default();
        assert!(message.starts_with("250 invalid fields: "), "{message}");
        assert!(message.ends_with("…and 245 more"), "{message}");
        let omitted = err.and_then(|e| e.metadata().get("omitted_violations").cloned());
        assert_eq!(omitted.as_deref(), Some("150"));
    }

    #[test]
    fn control_characters_are_refused() {
        for bad in ["a\0b", "bell\u{7}", "del\u{7f}", "rtl \u{202e}evil", "iso \u{2066}x", "esc\u{1b}[31m"] {
            let mut v = Violations::new();
            assert_eq!(v.optional_text("title", bad, 100), None, "{bad:?}");
        }
        let mut v = Violations::new();
        assert_eq!(
            v.text("note", "line one\nline two\r\n\tindented", 100).as_deref(),
            Some("line one\nline two\r\n\tindented")
        );
        assert!(v.text("title", "Surtaxe sur les véhicules — 電動車", 100).is_some());
        assert!(v.is_empty());
    }

    #[test]
    fn texts_and_urls() {
        let mut v = Violations::new();
        assert_eq!(v.text("title", "  A title ", 10), Some("A title".into()));
        assert_eq!(v.text("title", "   ", 10), None);
        assert_eq!(v.text("title", "far too long a title", 10), None);
        assert_eq!(v.url("source_url", ""), Some(String::new()));
        assert!(v.url("source_url", "https://example.org/x").is_some());
        assert!(v.url("source_url", "ftp://example.org").is_none());
        assert!(v.url("source_url", "https://exa mple.org").is_none());
        assert_eq!(v.finish().err().map(|e| e.violations().len()), Some(4));
    }

    #[test]
    fn page_sizes() {
        let mut v = Violations::new();
        assert_eq!(page_size(&mut v, 0), 50);
        assert_eq!(page_size(&mut v, 7), 7);
        assert_eq!(page_size(&mut v, 10_000), 500);
        assert!(v.is_empty());
        page_size(&mut v, -1);
        assert!(!v.is_empty());
    }
}
