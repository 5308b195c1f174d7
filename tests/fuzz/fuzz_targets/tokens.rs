//! The opaque tokens callers send back: page tokens (bound to a list's
//! filters) and change-feed resume tokens (bound to a service). Invariants:
//! never a panic; a token read is one this code could have written, and
//! reads back to the same position; a list's token is refused by a list of
//! other filters.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tradewatch_common::{feed::Position, paging::Page, proto::tariff as tpb, validate::Violations};

fuzz_target!(|input: (&str, i32, &str)| {
    let (token, page_size, economy) = input;
    if let Ok(position) = Position::parse(token, "tariff") {
        assert_eq!(Position::parse(&position.token("tariff"), "tariff"), Ok(position));
        assert!(Position::parse(token, "dispute").is_err(), "a tariff token is no other service's");
    }
    let filters = tpb::ListMeasuresRequest { imposing_economy: economy.to_owned(), ..Default::default() };
    let mut v = Violations::new();
    let page = Page::parse(&mut v, page_size, token, &filters);
    if v.is_empty() && !token.is_empty() {
        let other = tpb::ListMeasuresRequest { imposing_economy: format!("{economy}X"), ..Default::default() };
        let mut w = Violations::new();
        let _ = Page::parse(&mut w, page_size, token, &other);
        assert!(!w.is_empty(), "a page token is refused by a list of other filters");
        assert!(page.size >= 1, "a page holds at least one item");
    }
});
