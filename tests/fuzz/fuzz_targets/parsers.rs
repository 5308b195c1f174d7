//! The scalar parsers every request goes through: decimals (bounded as
//! rates, money and quantities), HS codes, dates, economies and currencies.
//! Invariants: never a panic; whatever parses is written back in a form that
//! parses to the same value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tradewatch_common::types::{
    DecimalBounds, Economy, HsCode, format_date, format_decimal, parse_bounded, parse_currency, parse_date,
    parse_decimal,
};

fuzz_target!(|text: &str| {
    if let Ok(d) = parse_decimal(text) {
        assert_eq!(parse_decimal(&format_decimal(d)), Ok(d), "{text:?}");
    }
    for bounds in [DecimalBounds::PERCENT, DecimalBounds::MONEY, DecimalBounds::QUANTITY] {
        if let Ok(d) = parse_bounded(text, bounds) {
            assert!(d.scale() as usize <= bounds.max_scale, "{text:?} kept {} places", d.scale());
            assert_eq!(parse_bounded(&format_decimal(d), bounds), Ok(d.normalize()), "{text:?}");
        }
    }
    if let Ok(code) = HsCode::parse(text) {
        assert_eq!(HsCode::parse(code.as_str()).as_ref().map(HsCode::as_str), Ok(code.as_str()), "{text:?}");
        let prefixes = code.prefixes();
        assert!(prefixes.iter().all(|p| p.covers(&code)), "{text:?}: every prefix covers the code");
    }
    let _ = HsCode::parse_line(text);
    if let Ok(day) = parse_date(text) {
        assert_eq!(format_date(day), text, "a date is read from exactly YYYY-MM-DD");
    }
    if let Ok(economy) = Economy::parse(text) {
        assert_eq!(economy.as_str(), text);
    }
    if let Ok(currency) = parse_currency(text) {
        assert_eq!(currency, text);
    }
});
