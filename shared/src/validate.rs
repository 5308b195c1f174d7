//! Collects every bad field of a request into one INVALID_ARGUMENT, naming
//! each field by its path (`measure.hs_codes[2]`), so a client fixes all of
//! them at once (AIP-193).

use crate::error::{Error, FieldViolation};

/// The violations found so far in one request.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a violation of `field`.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
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

    /// Parses every element of `values` with `parse`, naming bad ones
    /// `field[i]`, and refuses duplicates.
    pub fn check_each<T: PartialEq>(
        &mut self,
        field: &str,
        values: &[String],
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Vec<T> {
        let mut out: Vec<T> = Vec::with_capacity(values.len());
        for (i, raw) in values.iter().enumerate() {
            if let Some(v) = self.check(format!("{field}[{i}]"), parse(raw)) {
                if out.contains(&v) {
                    self.add(format!("{field}[{i}]"), format!("{raw:?} is listed twice"));
                } else {
                    out.push(v);
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

    /// An optional text of at most `max` characters.
    pub fn optional_text(&mut self, field: &str, value: &str, max: usize) -> Option<String> {
        if value.chars().count() > max {
            self.add(field, format!("is longer than {max} characters"));
            None
        } else {
            Some(value.trim().to_owned())
        }
    }

    /// An optional http(s) URL.
    pub fn url(&mut self, field: &str, value: &str) -> Option<String> {
        if value.is_empty() {
            return Some(String::new());
        }
        let ok = (value.starts_with("https://") || value.starts_with("http://"))
            && value.len() <= 2048
            && !value.chars().any(char::is_whitespace);
        if ok {
            Some(value.to_owned())
        } else {
            self.add(field, format!("{value:?} is not an http(s) URL"));
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
        self.0.is_empty()
    }

    /// Ok when nothing was found; otherwise the INVALID_ARGUMENT error.
    pub fn finish(self) -> Result<(), Error> {
        if self.0.is_empty() { Ok(()) } else { Err(Error::invalid(self.0)) }
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
        let parsed = v.check_each("measure.hs_codes", &codes, HsCode::parse);
        assert_eq!(parsed.len(), 2);
        let err = v.finish().err().map(|e| e.violations().iter().map(|f| f.field.clone()).collect::<Vec<_>>());
        assert_eq!(err, Some(vec!["measure.hs_codes[1]".to_owned(), "measure.hs_codes[2]".to_owned()]));
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
