//! Exact decimal values. A figure is never a float anywhere on its path.

use rust_decimal::Decimal;

/// Why a value literal was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid decimal `{input}`: {reason}")]
pub struct ValueError {
    pub input: String,
    pub reason: &'static str,
}

/// Largest magnitude of a published value: 10^20. A breakdown sums up to 65,535 items of a
/// dimension and revision statistics sum over a whole selection; with every value within
/// ±10^20, sums of up to 7.9 × 10^8 values stay within a decimal's range (about 7.9 × 10^28).
/// 10^20 units of a currency in millions is far beyond any real figure.
pub const MAX_VALUE: Decimal = Decimal::from_parts(0x6310_0000, 0x6BC7_5E2D, 5, false, 0);

/// Largest number of significant digits kept exactly (rust_decimal's limit is 28 to 29).
const MAX_DIGITS: usize = 28;

/// Parses a plain decimal literal: an optional sign, digits, and an optional fraction
/// (`-4530`, `1960.25`, `+0.5`). Exponents, `NaN`, infinities, thousands separators and
/// more than 28 significant digits are refused rather than rounded.
pub fn parse_value(input: &str) -> Result<Decimal, ValueError> {
    let fail = |reason| ValueError {
        input: super::text::quote_at_most(input, super::text::QUOTE),
        reason,
    };
    let body = input
        .strip_prefix('-')
        .or_else(|| input.strip_prefix('+'))
        .unwrap_or(input);
    if body.is_empty() {
        return Err(fail("empty"));
    }
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !all_digits(int) || frac.is_some_and(|f| f.is_empty() || !all_digits(f)) {
        return Err(fail(
            "expected digits with an optional sign and decimal point, like -4530 or 12.5",
        ));
    }
    let significant = int.trim_start_matches('0').len() + frac.map_or(0, str::len);
    if significant > MAX_DIGITS {
        return Err(fail("more than 28 significant digits"));
    }
    input.parse::<Decimal>().map_err(|_| fail("out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn keeps_values_exact() {
        assert_eq!(parse_value("-4530").unwrap(), Decimal::from(-4530));
        assert_eq!(parse_value("1960.25").unwrap().to_string(), "1960.25");
        assert_eq!(parse_value("+0.10").unwrap().to_string(), "0.10");
        assert_eq!(
            parse_value("0.1").unwrap() + parse_value("0.2").unwrap(),
            Decimal::from_str("0.3").unwrap()
        );
    }

    #[test]
    fn max_value_is_ten_to_the_twenty() {
        assert_eq!(MAX_VALUE, Decimal::from_str("100000000000000000000").unwrap());
    }

    #[test]
    fn refuses_what_is_not_a_plain_decimal() {
        for bad in [
            "",
            "-",
            "abc",
            "1e3",
            "1e400",
            "NaN",
            "nan",
            "inf",
            "-Infinity",
            "1,000",
            "1.",
            ".5",
            "1.2.3",
            " 1",
            "1 ",
            "0x10",
            "١٢",
            "--1",
            "1-",
            "123456789012345678901234567890",
            "0.00000000000000000000000000001",
        ] {
            let err = parse_value(bad).unwrap_err();
            assert!(err.to_string().starts_with("invalid decimal"), "{bad}: {err}");
        }
    }
}
