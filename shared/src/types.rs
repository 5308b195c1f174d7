//! Value types every service's domain uses. Each is parsed once at the API
//! edge ("parse, don't validate"); a value of the type is valid by
//! construction. Parse errors are plain descriptions; the caller names the
//! field (see [`crate::validate`]).

use std::{fmt, str::FromStr};

use chrono::NaiveDate;
use rust_decimal::Decimal;
use uuid::Uuid;

/// Most characters of a caller's value that an error message quotes.
pub const MAX_QUOTED_CHARS: usize = 64;

/// A caller's value as an error message quotes it: escaped, and cut to
/// [`MAX_QUOTED_CHARS`] characters (then `…`), so no error echoes a huge
/// or hostile value back whole.
pub fn quote(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTED_CHARS) {
        None => format!("{s:?}"),
        Some((end, _)) => format!("{:?}…", &s[..end]),
    }
}

/// An economy: an ISO 3166-1 alpha-3 country code, or `EUN` for the European
/// Union as a customs union. Three bytes, held inline: a schedule holds
/// hundreds of thousands of them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Economy([u8; 3]);

impl fmt::Debug for Economy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Economy").field(&self.as_str()).finish()
    }
}

impl Economy {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("is required".into());
        }
        if s == "EUN" || (s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase()) && is_alpha3(s.as_bytes())) {
            let b = s.as_bytes();
            return Ok(Self([b[0], b[1], b[2]]));
        }
        Err(format!("{} is not an upper-case ISO 3166-1 alpha-3 code (such as CAN, CHN, USA) or EUN", quote(s)))
    }

    pub fn as_str(&self) -> &str {
        // Only ever made from three ASCII letters.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Whether three upper-case letters are an ISO 3166-1 alpha-3 code: one bit
/// per three letters (26³ of them), set once from the standard's list, so
/// that every request's economies are checked without a walk of the list.
fn is_alpha3(code: &[u8]) -> bool {
    const LETTERS: usize = 26 * 26 * 26;
    fn slot(code: &[u8]) -> usize {
        code.iter().fold(0, |at, b| at * 26 + usize::from(b - b'A'))
    }
    static CODES: std::sync::LazyLock<Vec<u64>> = std::sync::LazyLock::new(|| {
        let mut bits = vec![0u64; LETTERS.div_ceil(64)];
        for country in isocountry::CountryCode::iter() {
            let code = country.alpha3().as_bytes();
            if code.len() == 3 && code.iter().all(u8::is_ascii_uppercase) {
                let at = slot(code);
                bits[at / 64] |= 1 << (at % 64);
            }
        }
        bits
    });
    let at = slot(code);
    CODES[at / 64] & (1 << (at % 64)) != 0
}

impl fmt::Display for Economy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Harmonized System code or prefix: 2 to 10 digits, even length.
/// `8703.80` is accepted and stored as `870380`. Eleven bytes, held inline
/// (the digits, then how many): a schedule holds hundreds of thousands. It
/// compares, orders and hashes as its digits do.
#[derive(Clone, Copy)]
pub struct HsCode {
    digits: [u8; 10],
    len: u8,
}

impl PartialEq for HsCode {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for HsCode {}

impl std::hash::Hash for HsCode {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialOrd for HsCode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for HsCode {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl fmt::Debug for HsCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HsCode").field(&self.as_str()).finish()
    }
}

impl HsCode {
    pub fn parse(s: &str) -> Result<Self, String> {
        // Ten digits and their dots; anything longer is refused unread.
        if s.len() > 20 {
            return Err(format!("{} is not an HS code: 2, 4, 6, 8 or 10 digits", quote(s)));
        }
        let digits: String = s.chars().filter(|c| *c != '.').collect();
        if digits.is_empty() {
            return Err("is required".into());
        }
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{} is not an HS code: digits only, with optional dots", quote(s)));
        }
        if digits.len() < 2 || digits.len() > 10 || !digits.len().is_multiple_of(2) {
            return Err(format!("{} is not an HS code: 2, 4, 6, 8 or 10 digits", quote(s)));
        }
        Ok(Self::of_digits(digits.as_bytes()))
    }

    /// 2 to 10 ASCII digits, checked by the caller.
    fn of_digits(digits: &[u8]) -> Self {
        let mut code = Self { digits: [0; 10], len: 0 };
        let n = digits.len().min(10);
        code.digits[..n].copy_from_slice(&digits[..n]);
        code.len = u8::try_from(n).unwrap_or(10);
        code
    }

    /// A full tariff line for duty resolution: 6 to 10 digits.
    pub fn parse_line(s: &str) -> Result<Self, String> {
        let code = Self::parse(s)?;
        if code.as_str().len() < 6 {
            return Err(format!("{} is too short to resolve a duty: give 6 to 10 digits", quote(s)));
        }
        Ok(code)
    }

    pub fn as_str(&self) -> &str {
        // Only ever made from ASCII digits.
        std::str::from_utf8(&self.digits[..usize::from(self.len)]).unwrap_or_default()
    }

    /// Whether `self` is a prefix of `code` (a code is a prefix of itself).
    pub fn covers(&self, code: &HsCode) -> bool {
        code.as_str().starts_with(self.as_str())
    }

    /// Every prefix of this code at even lengths, shortest first: 2, 4, … , itself.
    pub fn prefixes(&self) -> Vec<HsCode> {
        (2..=usize::from(self.len)).step_by(2).map(|n| Self::of_digits(&self.digits[..n])).collect()
    }
}

impl fmt::Display for HsCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A calendar date written `YYYY-MM-DD`, exactly.
pub fn parse_date(s: &str) -> Result<NaiveDate, String> {
    if s.is_empty() {
        return Err("is required (YYYY-MM-DD)".into());
    }
    let b = s.as_bytes();
    let well_formed = b.len() == 10
        && b.iter().enumerate().all(|(i, b)| if i == 4 || i == 7 { *b == b'-' } else { b.is_ascii_digit() });
    // Read from its digits: a strftime pattern would be parsed again on
    // every call, and dates come with most requests.
    let number = |digits: &[u8]| digits.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    let date = well_formed
        .then(|| {
            let year = i32::try_from(number(&b[..4])).ok()?;
            NaiveDate::from_ymd_opt(year, number(&b[5..7]), number(&b[8..]))
        })
        .flatten();
    date.ok_or_else(|| format!("{} is not a date written YYYY-MM-DD", quote(s)))
}

/// The wire form of a date.
pub fn format_date(d: NaiveDate) -> String {
    use chrono::Datelike as _;
    // Written out rather than through a strftime pattern, which is parsed
    // again on every call: dates are formatted on every answer.
    let year = d.year();
    if (0..=9999).contains(&year) {
        format!("{year:04}-{:02}-{:02}", d.month(), d.day())
    } else {
        d.format("%Y-%m-%d").to_string()
    }
}

/// A decimal string such as `"6.1"`, `"-3"`, `"1250000.00"`: no exponent, no
/// thousands separators, at most 28 significant digits. For values read back
/// from storage; a caller's values go through [`parse_bounded`].
pub fn parse_decimal(s: &str) -> Result<Decimal, String> {
    if s.is_empty() {
        return Err("is required (a decimal string such as \"6.1\")".into());
    }
    let plain = s.bytes().enumerate().all(|(i, b)| b.is_ascii_digit() || b == b'.' || (i == 0 && b == b'-'));
    if !plain || s.matches('.').count() > 1 || s.ends_with('.') || s.starts_with('.') || s == "-" {
        return Err(format!("{} is not a decimal string such as \"6.1\"", quote(s)));
    }
    // rust_decimal rounds digits past its 28th: refuse them instead.
    let (int, frac) = s.trim_start_matches('-').split_once('.').unwrap_or((s.trim_start_matches('-'), ""));
    if int.trim_start_matches('0').len() + frac.trim_end_matches('0').len() > 28 {
        return Err(format!("{} has more digits than a decimal keeps", quote(s)));
    }
    Decimal::from_str(s).map_err(|_| format!("{} is out of range for a decimal", quote(s)))
}

/// What a caller's decimal may hold: how large, and how many decimal places.
#[derive(Debug, Clone, Copy)]
pub struct DecimalBounds {
    /// Digits before the point of the largest value (15 for 10^15).
    max_int_digits: usize,
    /// The largest value, written out.
    max: &'static str,
    pub max_scale: usize,
}

impl DecimalBounds {
    /// A percentage: 0 to 100,000, at most 6 decimal places.
    pub const PERCENT: Self = Self { max_int_digits: 6, max: "100000", max_scale: 6 };
    /// An amount of money: 0 to 10^15, at most 4 decimal places.
    pub const MONEY: Self = Self { max_int_digits: 16, max: "1000000000000000", max_scale: 4 };
    /// A quantity: 0 to 10^12, at most 4 decimal places.
    pub const QUANTITY: Self = Self { max_int_digits: 13, max: "1000000000000", max_scale: 4 };

    fn max(&self) -> Decimal {
        Decimal::from_str(self.max).unwrap_or(Decimal::MAX)
    }
}

/// A caller's decimal within `bounds`: zero or more, no larger than the
/// bound, and no more decimal places than it keeps. Extra digits are refused,
/// never rounded away; trailing zeros are not digits of the value.
pub fn parse_bounded(s: &str, bounds: DecimalBounds) -> Result<Decimal, String> {
    if s.len() > 64 {
        return Err(format!("{} is too long for a decimal", quote(s)));
    }
    let plain = s.bytes().enumerate().all(|(i, b)| b.is_ascii_digit() || b == b'.' || (i == 0 && b == b'-'));
    if s.is_empty() {
        return Err("is required (a decimal string such as \"6.1\")".into());
    }
    if !plain || s.matches('.').count() > 1 || s.ends_with('.') || s.starts_with('.') || s == "-" {
        return Err(format!("{} is not a decimal string such as \"6.1\"", quote(s)));
    }
    let unsigned = s.trim_start_matches('-');
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if frac.trim_end_matches('0').len() > bounds.max_scale {
        return Err(format!("{} has more than {} decimal places", quote(s), bounds.max_scale));
    }
    let too_large = || format!("{} is larger than {}", quote(s), bounds.max);
    if int.trim_start_matches('0').len() > bounds.max_int_digits {
        return Err(too_large());
    }
    let d = Decimal::from_str(s).map_err(|_| too_large())?;
    if d.is_sign_negative() && !d.is_zero() {
        return Err(format!("{} must not be negative", quote(s)));
    }
    if d > bounds.max() {
        return Err(too_large());
    }
    Ok(d.normalize())
}

/// A caller's decimal within `bounds` that is also greater than zero.
pub fn parse_bounded_positive(s: &str, bounds: DecimalBounds) -> Result<Decimal, String> {
    let d = parse_bounded(s, bounds)?;
    if d.is_zero() {
        return Err(format!("{} must be greater than zero", quote(s)));
    }
    Ok(d)
}

/// The canonical wire form of a decimal: no trailing zeros after the point.
pub fn format_decimal(d: Decimal) -> String {
    d.normalize().to_string()
}

/// An ISO 4217 currency code: three upper-case letters.
pub fn parse_currency(s: &str) -> Result<String, String> {
    if s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(s.to_owned())
    } else if s.is_empty() {
        Err("is required (an ISO 4217 code such as CAD)".into())
    } else {
        Err(format!("{} is not an ISO 4217 currency code such as CAD", quote(s)))
    }
}

/// An amount of money in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    pub currency: String,
    pub amount: Decimal,
}

impl Money {
    pub fn new(currency: impl Into<String>, amount: Decimal) -> Self {
        Self { currency: currency.into(), amount }
    }

    /// Rounded to cents, half away from zero, as customs authorities do.
    pub fn rounded(&self) -> Self {
        Self {
            currency: self.currency.clone(),
            amount: self.amount.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero),
        }
    }
}

impl From<&Money> for crate::proto::common::Money {
    fn from(m: &Money) -> Self {
        Self { currency_code: m.currency.clone(), amount: format_money_amount(m.amount) }
    }
}

/// Money amounts keep two decimals on the wire ("2440.00").
fn format_money_amount(d: Decimal) -> String {
    let mut d = d.normalize();
    if d.scale() < 2 {
        d.rescale(2);
    }
    d.to_string()
}

/// The wire form of an instant.
pub fn timestamp(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0) }
}

/// A resource id: a UUID.
pub fn parse_id(s: &str) -> Result<Uuid, String> {
    if s.is_empty() {
        return Err("is required".into());
    }
    Uuid::try_parse(s).map_err(|_| format!("{} is not a UUID", quote(s)))
}

/// An optional `request_id`: empty, or a UUID.
pub fn parse_request_id(s: &str) -> Result<Option<Uuid>, String> {
    if s.is_empty() { Ok(None) } else { parse_id(s).map(Some) }
}

/// A new server-made id: UUIDv7, so that ids sort by creation time.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

#[cfg(test)]
mod tests {

    #[test]
    fn dates_are_written_as_chrono_writes_them() {
        for (y, m, d) in [(1, 1, 1), (999, 12, 31), (2024, 2, 29), (2026, 11, 29), (9999, 12, 31)] {
            let day = NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default();
            assert_eq!(format_date(day), day.format("%Y-%m-%d").to_string());
        }
        assert_eq!(format_date(NaiveDate::from_ymd_opt(2026, 3, 1).unwrap_or_default()), "2026-03-01");
    }

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn economies() {
        for good in ["CAN", "CHN", "USA", "EUN", "JPN", "DEU"] {
            assert!(Economy::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "can", "CA", "CANA", "XXX", "EU", "E1N", " CAN", "ZZZ", "AAA", "é"] {
            assert!(Economy::parse(bad).is_err(), "{bad}");
        }
        // Every code of the standard, and nothing else of three letters.
        let known: std::collections::HashSet<&str> = isocountry::CountryCode::iter().map(|c| c.alpha3()).collect();
        for a in b'A'..=b'Z' {
            for b in b'A'..=b'Z' {
                for c in b'A'..=b'Z' {
                    let code = [a, b, c];
                    let code = std::str::from_utf8(&code).unwrap_or_default();
                    assert_eq!(Economy::parse(code).is_ok(), known.contains(code) || code == "EUN", "{code}");
                }
            }
        }
    }

    #[test]
    fn hs_codes() {
        let good = [
            ("87", "87"),
            ("8703", "8703"),
            ("8703.80", "870380"),
            ("8703.80.00.10", "8703800010"),
            ("870380", "870380"),
        ];
        for (input, stored) in good {
            assert_eq!(HsCode::parse(input).map(|c| c.as_str().to_owned()), Ok(stored.to_owned()), "{input}");
        }
        for bad in ["", "8", "870", "87033", "87a3", "87 03", "870380001011", "-87", ".", "8703,80"] {
            assert!(HsCode::parse(bad).is_err(), "{bad}");
        }
        assert!(HsCode::parse_line("8703").is_err());
        assert!(HsCode::parse_line("870380").is_ok());
    }

    #[test]
    fn hs_prefixes_run_shortest_first() -> Result<(), String> {
        let code = HsCode::parse("8703800010")?;
        let got: Vec<_> = code.prefixes().into_iter().map(|c| c.as_str().to_owned()).collect();
        assert_eq!(got, ["87", "8703", "870380", "87038000", "8703800010"]);
        assert!(HsCode::parse("8703")?.covers(&code));
        assert!(!HsCode::parse("8704")?.covers(&code));
        Ok(())
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("2025-01-31").map(format_date), Ok("2025-01-31".into()));
        assert!(parse_date("2024-02-29").is_ok());
        for bad in [
            "",
            "2025-1-31",
            "2025-02-30",
            "2023-02-29",
            "31/01/2025",
            "2025-01-31T00:00:00Z",
            "20250131",
            "+2025-01-31",
            "2025-13-01",
            "2025-00-10",
            "2025-01-00",
            "0000-00-00",
            "2025-01-3١",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn decimals() {
        for (input, canonical) in
            [("6.1", "6.1"), ("100", "100"), ("1250000.00", "1250000"), ("-3", "-3"), ("0.050", "0.05"), ("0", "0")]
        {
            assert_eq!(parse_decimal(input).map(format_decimal), Ok(canonical.to_owned()), "{input}");
        }
        for bad in
            ["", "6,1", "1e5", "abc", "1.2.3", ".5", "5.", "-", "+5", " 5", "NaN", "99999999999999999999999999999999"]
        {
            assert!(parse_decimal(bad).is_err(), "{bad}");
        }
        let long = format!("0.{}1", "0".repeat(40));
        assert!(parse_decimal(&long).is_err(), "never rounded to zero");
    }

    #[test]
    fn bounded_decimals_refuse_what_they_cannot_keep() {
        use DecimalBounds as B;
        assert_eq!(parse_bounded("6.1", B::PERCENT), Ok(Decimal::new(61, 1)));
        assert_eq!(parse_bounded("100000", B::PERCENT), Ok(Decimal::new(100_000, 0)));
        assert_eq!(parse_bounded("0.123456", B::PERCENT), Ok(Decimal::new(123_456, 6)));
        assert_eq!(parse_bounded("1.5000000000", B::PERCENT), Ok(Decimal::new(15, 1)), "trailing zeros are no digits");
        assert_eq!(parse_bounded("000012.5", B::PERCENT), Ok(Decimal::new(125, 1)));
        assert_eq!(parse_bounded("1000000000000000", B::MONEY).map(format_decimal), Ok("1000000000000000".into()));
        assert_eq!(parse_bounded("1000000000000", B::QUANTITY).map(format_decimal), Ok("1000000000000".into()));
        for (bad, bounds) in [
            ("100000.000001", B::PERCENT),
            ("0.0000001", B::PERCENT),
            ("79228162514264337593543950335", B::PERCENT),
            ("79228162514264337593543950335", B::MONEY),
            ("1000000000000000.0001", B::MONEY),
            ("0.00001", B::MONEY),
            ("1000000000000.0001", B::QUANTITY),
            ("-0.01", B::MONEY),
            ("", B::MONEY),
            ("1e5", B::MONEY),
        ] {
            assert!(parse_bounded(bad, bounds).is_err(), "{bad}");
        }
        let hostile = format!("0.{}1", "0".repeat(10_000));
        let err = parse_bounded(&hostile, B::MONEY);
        assert!(err.is_err(), "never rounded to zero");
        let err = err.err().unwrap_or_default();
        assert!(err.len() < 120, "the echo is cut: {err}");
        assert!(parse_bounded_positive("0", B::QUANTITY).is_err());
        assert!(parse_bounded_positive("0.0001", B::QUANTITY).is_ok());
    }

    #[test]
    fn quotes_are_cut() {
        assert_eq!(quote("CAN"), "\"CAN\"");
        let q = quote(&"x".repeat(1_000_000));
        assert!(q.chars().count() <= MAX_QUOTED_CHARS + 3, "{}", q.len());
        assert_eq!(quote("a\0b"), "\"a\\0b\"");
    }

    #[test]
    fn money() {
        assert!(parse_currency("CAD").is_ok());
        for bad in ["", "cad", "CA", "CADD", "C4D"] {
            assert!(parse_currency(bad).is_err(), "{bad}");
        }
        let m = Money::new("CAD", Decimal::new(24400005, 4)).rounded();
        assert_eq!(crate::proto::common::Money::from(&m).amount, "2440.00");
        let half = Money::new("CAD", Decimal::new(5, 3)).rounded();
        assert_eq!(half.amount, Decimal::new(1, 2));
    }

    #[test]
    fn ids() {
        assert!(parse_id(&new_id().to_string()).is_ok());
        assert!(parse_id("not-a-uuid").is_err());
        assert!(parse_id("").is_err());
        assert_eq!(parse_request_id(""), Ok(None));
        assert!(parse_request_id("x").is_err());
        assert!(new_id() < new_id(), "UUIDv7 ids sort by creation");
    }

    proptest! {
        #[test]
        fn hs_code_normalisation_drops_dots_and_keeps_digits(
            digits in "[0-9]{1,5}".prop_map(|s| s.chars().flat_map(|c| [c, c]).collect::<String>()),
            dots in proptest::collection::vec(any::<bool>(), 10)
        ) {
            let mut dotted = String::new();
            for (i, c) in digits.chars().enumerate() {
                if i > 0 && dots[i % dots.len()] { dotted.push('.'); }
                dotted.push(c);
            }
            let parsed = HsCode::parse(&dotted).map_err(TestCaseError::fail)?;
            prop_assert_eq!(parsed.as_str(), digits.as_str());
            // Normalising is idempotent, and every prefix covers the code.
            prop_assert_eq!(HsCode::parse(parsed.as_str()).map_err(TestCaseError::fail)?, parsed);
            for p in parsed.prefixes() { prop_assert!(p.covers(&parsed)); }
        }

        #[test]
        fn odd_or_non_digit_codes_are_refused(s in "[0-9a-z.]{0,12}") {
            let digits: String = s.chars().filter(|c| *c != '.').collect();
            let valid = digits.bytes().all(|b| b.is_ascii_digit()) && (2..=10).contains(&digits.len()) && digits.len().is_multiple_of(2);
            prop_assert_eq!(HsCode::parse(&s).is_ok(), valid);
        }

        #[test]
        fn decimals_round_trip(mantissa in any::<i64>(), scale in 0u32..10) {
            let d = Decimal::new(mantissa, scale);
            let parsed = parse_decimal(&d.to_string()).map_err(TestCaseError::fail)?;
            prop_assert_eq!(parsed, d);
            prop_assert_eq!(parse_decimal(&format_decimal(d)).map_err(TestCaseError::fail)?, d);
        }
    }
}
