//! The opaque tokens callers send back: page tokens (bound to a list's
//! filters) and change-feed resume tokens (bound to a service). Invariants:
//! never a panic; a made-up token is refused unless it is one this code
//! wrote; every cursor a page ends on comes back from its token, for the
//! same filters only; a position's token reads back to it, in its own
//! service's feed only.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tradewatch_common::{feed::Position, paging::Page, proto::tariff as tpb, validate::Violations};

fuzz_target!(|input: (&str, &str, i64, i32)| {
    let (token, cursor, seq, page_size) = input;
    // Made up: read, or refused, never a panic.
    if let Ok(position) = Position::parse(token, "tariff") {
        assert_eq!(Position::parse(&position.token("tariff"), "tariff"), Ok(position));
    }
    let position = Position(seq);
    assert_eq!(Position::parse(&position.token("tariff"), "tariff"), Ok(position));
    assert!(Position::parse(&position.token("tariff"), "dispute").is_err(), "a tariff token is no other service's");

    let filters = tpb::ListMeasuresRequest { imposing_economy: "CAN".into(), ..Default::default() };
    let other = tpb::ListMeasuresRequest { imposing_economy: "CHN".into(), ..Default::default() };
    let mut v = Violations::new();
    let _ = Page::parse(&mut v, page_size, token, &filters);
    // A page of one that has more after it: its token is the cursor's (the
    // service's cursors are ids and dates, a few dozen bytes; a token is
    // refused past MAX_TOKEN_CHARS).
    if cursor.len() > 64 {
        return;
    }
    let mut v = Violations::new();
    let page = Page::parse(&mut v, 1, "", &filters);
    let (_, next) = page.finish(vec![cursor.to_owned(), String::new()], Clone::clone);
    let mut v = Violations::new();
    let again = Page::parse(&mut v, 1, &next, &filters);
    assert!(v.is_empty(), "a page's own token is accepted");
    assert_eq!(again.after.as_deref(), Some(cursor), "the cursor comes back");
    let mut v = Violations::new();
    let _ = Page::parse(&mut v, 1, &next, &other);
    assert!(!v.is_empty(), "a page token is refused by a list of other filters");
});
