//! Opaque page tokens (AIP-158).
//!
//! A token carries the sort key of the last item served and a fingerprint of
//! the request's filters, sealed with a checksum: a token that was altered, or
//! sent with other filters than the ones that made it, is INVALID_ARGUMENT.
//! The checksum guards integrity, not secrecy: tokens hold only sort keys.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use chrono::NaiveDate;
use uuid::Uuid;

use crate::{
    error::{Error, Result},
    validate::{self, Violations},
};

const VERSION: u8 = 1;
const SEAL: &[u8] = b"tradewatch page token v1";
const FINGERPRINT_LEN: usize = 8;
const CHECKSUM_LEN: usize = 8;
/// Our tokens hold a sort key of a few dozen bytes; anything longer is not one.
const MAX_TOKEN_CHARS: usize = 512;

/// One page to serve: at most `size` items after the cursor `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub size: u64,
    pub after: Option<String>,
    fingerprint: [u8; FINGERPRINT_LEN],
}

impl Page {
    /// Reads `page_size` and `page_token`. `filters` is the request with its
    /// page fields cleared, so a token only serves the query that made it.
    pub fn parse<M: prost::Message>(v: &mut Violations, page_size: i32, page_token: &str, filters: &M) -> Self {
        let fingerprint = fingerprint(filters);
        let size = validate::page_size(v, page_size);
        let after = if page_token.is_empty() {
            None
        } else {
            match decode(page_token, &fingerprint) {
                Ok(cursor) => Some(cursor),
                Err(why) => {
                    v.add("page_token", why);
                    None
                }
            }
        };
        Self { size, after, fingerprint }
    }

    /// Cuts a page whose encoded messages would not fit in `budget` bytes
    /// (see [`response_budget`]): the items that fit stay, at least one, and
    /// `next_page_token` continues right after the last of them. A page is
    /// never refused for its size; it is cut short and continued.
    pub fn fit<P: prost::Message>(
        &self,
        items: &mut Vec<P>,
        next_page_token: &mut String,
        budget: usize,
        cursor_of: impl Fn(&P) -> String,
    ) {
        let keep = fitting(items, budget);
        if keep < items.len() {
            items.truncate(keep);
            if let Some(last) = items.last() {
                *next_page_token = encode(&cursor_of(last), &self.fingerprint);
            }
        }
    }

    /// Like [`fit`](Self::fit), for answers whose messages do not carry
    /// their sort key: `cursor_at(i)` gives the cursor of the `i`-th item.
    pub fn fit_at<P: prost::Message>(
        &self,
        items: &mut Vec<P>,
        next_page_token: &mut String,
        budget: usize,
        cursor_at: impl Fn(usize) -> String,
    ) {
        let keep = fitting(items, budget);
        if keep < items.len() {
            items.truncate(keep);
            *next_page_token = encode(&cursor_at(keep - 1), &self.fingerprint);
        }
    }

    /// How many rows to fetch: one more than the page, to know whether
    /// another page follows.
    pub fn fetch_limit(&self) -> u64 {
        self.size + 1
    }

    /// Cuts `rows` (fetched with [`fetch_limit`](Self::fetch_limit)) to the
    /// page and returns the next token, empty on the last page.
    pub fn finish<T>(&self, mut rows: Vec<T>, cursor_of: impl Fn(&T) -> String) -> (Vec<T>, String) {
        let size = usize::try_from(self.size).unwrap_or(usize::MAX);
        if rows.len() > size {
            rows.truncate(size);
            let token = rows.last().map(|last| encode(&cursor_of(last), &self.fingerprint)).unwrap_or_default();
            (rows, token)
        } else {
            (rows, String::new())
        }
    }
}

/// How many of `items`, from the first, fit in `budget` bytes as a
/// repeated field (each its tag, its length and its bytes); at least one.
fn fitting<P: prost::Message>(items: &[P], budget: usize) -> usize {
    let mut used = 0usize;
    for (i, item) in items.iter().enumerate() {
        let len = item.encoded_len();
        used = used.saturating_add(len + prost::length_delimiter_len(len) + 1);
        if used > budget {
            return i.max(1);
        }
    }
    items.len()
}

/// The bytes a list response may spend on its items under a message limit
/// of `max_message_bytes`: the rest is room for the token and framing.
pub fn response_budget(max_message_bytes: usize) -> usize {
    max_message_bytes.saturating_sub((max_message_bytes / 16).max(1024))
}

fn bad_cursor() -> Error {
    Error::invalid_field("page_token", "is not a page token this service issued")
}

/// The cursor of a list in id order (ids are UUIDv7: creation order).
pub fn id_cursor(id: Uuid) -> String {
    id.to_string()
}

pub fn parse_id_cursor(cursor: &str) -> Result<Uuid> {
    Uuid::try_parse(cursor).map_err(|_| bad_cursor())
}

/// The cursor of a timeline in (day, id) order.
pub fn dated_cursor(day: NaiveDate, id: Uuid) -> String {
    format!("{}|{id}", crate::types::format_date(day))
}

pub fn parse_dated_cursor(cursor: &str) -> Result<(NaiveDate, Uuid)> {
    let (day, id) = cursor.split_once('|').ok_or_else(bad_cursor)?;
    let day = crate::types::parse_date(day).map_err(|_| bad_cursor())?;
    Ok((day, parse_id_cursor(id)?))
}

fn fingerprint<M: prost::Message>(filters: &M) -> [u8; FINGERPRINT_LEN] {
    let digest = Sha256::digest(filters.encode_to_vec());
    let mut out = [0; FINGERPRINT_LEN];
    out.copy_from_slice(&digest[..FINGERPRINT_LEN]);
    out
}

fn checksum(body: &[u8]) -> [u8; CHECKSUM_LEN] {
    let digest = Sha256::new().chain_update(SEAL).chain_update(body).finalize();
    let mut out = [0; CHECKSUM_LEN];
    out.copy_from_slice(&digest[..CHECKSUM_LEN]);
    out
}

fn encode(cursor: &str, fingerprint: &[u8; FINGERPRINT_LEN]) -> String {
    let mut body = Vec::with_capacity(1 + FINGERPRINT_LEN + cursor.len() + CHECKSUM_LEN);
    body.push(VERSION);
    body.extend_from_slice(fingerprint);
    body.extend_from_slice(cursor.as_bytes());
    let sum = checksum(&body);
    body.extend_from_slice(&sum);
    URL_SAFE_NO_PAD.encode(body)
}

fn decode(token: &str, fingerprint: &[u8; FINGERPRINT_LEN]) -> Result<String, &'static str> {
    const INVALID: &str = "is not a page token this service issued";
    if token.len() > MAX_TOKEN_CHARS {
        return Err(INVALID);
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| INVALID)?;
    if bytes.len() < 1 + FINGERPRINT_LEN + CHECKSUM_LEN || bytes[0] != VERSION {
        return Err(INVALID);
    }
    let (body, sum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
    if checksum(body) != sum {
        return Err(INVALID);
    }
    if body[1..=FINGERPRINT_LEN] != fingerprint[..] {
        return Err(
            "was issued for other filters: send the same filters with each page, or start again without a token",
        );
    }
    String::from_utf8(body[1 + FINGERPRINT_LEN..].to_vec()).map_err(|_| INVALID)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::common::Money;

    fn filters(currency: &str) -> Money {
        Money { currency_code: currency.into(), amount: String::new() }
    }

    fn page(token: &str, f: &Money) -> (Page, Violations) {
        let mut v = Violations::new();
        (Page::parse(&mut v, 2, token, f), v)
    }

    #[test]
    fn a_token_round_trips_its_cursor() {
        let (first, v) = page("", &filters("CAD"));
        assert!(v.is_empty());
        let (rows, token) = first.finish(vec!["a", "b", "c"], |s| (*s).to_owned());
        assert_eq!(rows, ["a", "b"]);
        assert!(!token.is_empty());
        let (second, v) = page(&token, &filters("CAD"));
        assert!(v.is_empty());
        assert_eq!(second.after.as_deref(), Some("b"));
        let (rows, token) = second.finish(vec!["c"], |s| (*s).to_owned());
        assert_eq!(rows, ["c"]);
        assert_eq!(token, "", "the last page has no next token");
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let (first, _) = page("", &filters("CAD"));
        let (_, token) = first.finish(vec![1, 2, 3], |n: &i32| n.to_string());
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap_or_default();
        let i = 1 + FINGERPRINT_LEN;
        bytes[i] ^= 1;
        let tampered = URL_SAFE_NO_PAD.encode(bytes);
        for bad in [tampered.as_str(), "garbage", "!!!", &token[..token.len() - 2]] {
            let (_, v) = page(bad, &filters("CAD"));
            assert!(!v.is_empty(), "{bad} was accepted");
        }
    }

    #[test]
    fn a_page_too_large_for_one_message_is_cut_and_continued() {
        let (first, _) = page("", &filters("CAD"));
        let big = |n: usize| Money { currency_code: "CAD".into(), amount: n.to_string().repeat(100) };
        let mut items = vec![big(1), big(2), big(3)];
        let mut token = String::new();
        first.fit(&mut items, &mut token, 250, |m| m.amount[..1].to_owned());
        assert_eq!(items.len(), 2);
        let (second, v) = page(&token, &filters("CAD"));
        assert!(v.is_empty());
        assert_eq!(second.after.as_deref(), Some("2"));
        let mut one = vec![big(1), big(2)];
        let mut token = String::new();
        first.fit(&mut one, &mut token, 10, |m| m.amount[..1].to_owned());
        assert_eq!(one.len(), 1, "at least one item is always served");
        let mut small = vec![big(1)];
        let mut token = String::new();
        first.fit(&mut small, &mut token, 10_000, |m| m.amount.clone());
        assert!(token.is_empty(), "a page that fits keeps its token");
    }

    #[test]
    fn a_huge_token_is_refused_unread() {
        let (_, v) = page(&"A".repeat(4_000_000), &filters("CAD"));
        assert!(!v.is_empty());
    }

    #[test]
    fn a_token_only_serves_its_own_filters() {
        let (first, _) = page("", &filters("CAD"));
        let (_, token) = first.finish(vec![1, 2, 3], |n: &i32| n.to_string());
        let (_, v) = page(&token, &filters("CNY"));
        assert!(!v.is_empty());
    }
}
