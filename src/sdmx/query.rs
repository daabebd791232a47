//! Parsing of SDMX-REST 1.5 requests: the path, the query string and the time parameters.
//! Every input is bounded before it is looked at: the query string's length and number of
//! parameters, the key's length and number of alternatives.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use super::error::SdmxError;
use crate::domain::{Frequency, Period};

/// Longest query string, in bytes.
pub const MAX_QUERY_STRING: usize = 4096;
/// Most parameters in one query string.
pub const MAX_PARAMS: usize = 32;
/// Longest series key (or key filter), in bytes.
pub const MAX_KEY: usize = 2048;
/// Most codes one key may name in all its parts together (`+` alternatives).
pub const MAX_KEY_CODES: usize = 512;
/// Most artefact ids, agencies or versions one structure query may list with `+`.
pub const MAX_LIST: usize = 64;

/// The query string's parameters, percent-decoded. A `+` is kept as a `+`: no SDMX parameter
/// holds a space, and clients send time offsets (`+00:00`) unencoded.
pub fn parse_query_string(raw: Option<&str>) -> Result<Vec<(String, String)>, SdmxError> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(Vec::new());
    };
    if raw.len() > MAX_QUERY_STRING {
        return Err(SdmxError::syntax(format!(
            "the query string has {} bytes; the limit is {MAX_QUERY_STRING}",
            raw.len()
        )));
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        if out.len() == MAX_PARAMS {
            return Err(SdmxError::syntax(format!("more than {MAX_PARAMS} query parameters")));
        }
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(name)?;
        let value = percent_decode(value)?;
        if out.iter().any(|(n, _)| *n == name) {
            return Err(SdmxError::syntax(format!(
                "parameter `{}` is given twice",
                shorten(&name)
            )));
        }
        out.push((name, value));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Result<String, SdmxError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| SdmxError::syntax(format!("bad percent-encoding in `{}`", shorten(s))))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| SdmxError::syntax(format!("`{}` is not UTF-8 once decoded", shorten(s))))
}

/// At most 64 characters of `s`, for messages.
pub fn shorten(s: &str) -> String {
    crate::domain::text::quote_at_most(s, 64)
}

/// A positive integer parameter.
pub fn positive(name: &str, value: &str) -> Result<u32, SdmxError> {
    match value.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(SdmxError::syntax(format!(
            "parameter `{name}` must be a positive integer (at most {}), not `{}`",
            u32::MAX,
            shorten(value)
        ))),
    }
}

/// A boolean parameter.
pub fn boolean(name: &str, value: &str) -> Result<bool, SdmxError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(SdmxError::syntax(format!(
            "parameter `{name}` must be `true` or `false`, not `{}`",
            shorten(value)
        ))),
    }
}

/// An `xs:dateTime` (RFC 3339); without an offset it is UTC, and a date alone is its
/// midnight in UTC. A space where the offset's `+` belongs (a `+` sent unencoded and decoded
/// as a space by a proxy) is read as the `+`.
pub fn date_time(name: &str, value: &str) -> Result<DateTime<Utc>, SdmxError> {
    let fixed = value.trim_end().replace(' ', "+");
    let fixed = fixed.as_str();
    let bad = || {
        SdmxError::syntax(format!(
            "parameter `{name}`: `{}` is not a date-time (e.g. 2025-10-01T00:00:00+00:00 or 2025-10-01)",
            shorten(value)
        ))
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(fixed) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(fixed, "%Y-%m-%dT%H:%M:%S%.f") {
        return Ok(t.and_utc());
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(fixed, "%Y-%m-%dT%H:%M") {
        return Ok(t.and_utc());
    }
    if let Ok(d) = NaiveDate::parse_from_str(fixed, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).ok_or_else(bad)?.and_utc());
    }
    Err(bad())
}

/// A month counted from year 0: `year * 12 + month - 1`.
pub type Month = u32;

/// The first and last month a period covers.
pub fn months(p: Period) -> (Month, Month) {
    let year = u32::from(p.year()) * 12;
    let i = u32::from(p.index());
    match p.frequency() {
        Frequency::Annual => (year, year + 11),
        Frequency::HalfYear => (year + (i - 1) * 6, year + i * 6 - 1),
        Frequency::Quarter => (year + (i - 1) * 3, year + i * 3 - 1),
        Frequency::Month => (year + i - 1, year + i - 1),
    }
}

/// `startPeriod` or `endPeriod` (SDMX `StandardTimePeriodType`) as the month it starts
/// (`start`) or ends (`!start`) in: `2025`, `2025-A1`, `2025-S1`, `2025-Q3`, `2025-07`,
/// `2025-M07`, a date `2025-07-15` or a date-time. Weeks and days are refused.
pub fn period_bound(name: &str, value: &str, start: bool) -> Result<Month, SdmxError> {
    let bad = |why: &str| SdmxError::syntax(format!("parameter `{name}`: `{}` {why}", shorten(value)));
    let forms = "is not a period (e.g. 2025, 2025-S1, 2025-Q3, 2025-07, 2025-07-15)";
    let v = value.trim();
    if v.len() < 4 || !v.is_char_boundary(4) || !v[..4].bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(forms));
    }
    let year: u32 = v[..4].parse().map_err(|_| bad(forms))?;
    let pick = |first: u32, last: u32| year * 12 + if start { first } else { last };
    let rest = &v[4..];
    if rest.is_empty() {
        return Ok(pick(0, 11));
    }
    let rest = rest.strip_prefix('-').ok_or_else(|| bad(forms))?;
    let number = |s: &str, max: u32| -> Result<u32, SdmxError> {
        match s.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) && s.len() <= 2 => Ok(n),
            _ => Err(bad(forms)),
        }
    };
    let (tag, num) = rest.split_at(rest.chars().next().map_or(0, char::len_utf8));
    match tag {
        "A" => {
            number(num, 1)?;
            Ok(pick(0, 11))
        }
        "S" => {
            let h = number(num, 2)?;
            Ok(pick((h - 1) * 6, h * 6 - 1))
        }
        "Q" => {
            let q = number(num, 4)?;
            Ok(pick((q - 1) * 3, q * 3 - 1))
        }
        "M" => {
            let m = number(num, 12)?;
            Ok(pick(m - 1, m - 1))
        }
        "W" | "D" | "T" => Err(bad(
            "names weeks, days or trimesters, which this service does not publish",
        )),
        _ if rest.len() == 2 => {
            let m = number(rest, 12)?;
            Ok(pick(m - 1, m - 1))
        }
        _ => {
            // A date, or a date-time: its month.
            let date = rest.get(..5).filter(|_| rest.len() >= 5).ok_or_else(|| bad(forms))?;
            let full = format!("{}-{date}", &v[..4]);
            let d = NaiveDate::parse_from_str(&full, "%Y-%m-%d").map_err(|_| bad(forms))?;
            let tail = &rest[5..];
            if !tail.is_empty() && !tail.starts_with('T') {
                return Err(bad(forms));
            }
            use chrono::Datelike;
            Ok(year * 12 + d.month0())
        }
    }
}

/// A dataflow reference `AGENCY,ID,VERSION`, `AGENCY,ID` or `ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRef {
    pub agency: Option<String>,
    pub id: String,
    pub version: Option<String>,
}

impl FlowRef {
    pub fn parse(s: &str) -> Result<FlowRef, SdmxError> {
        if s.len() > 256 {
            return Err(SdmxError::syntax(format!("flowRef `{}` is too long", shorten(s))));
        }
        let parts: Vec<&str> = s.split(',').collect();
        let keyword = |p: &str, kw: &[&str]| (!kw.contains(&p) && !p.is_empty()).then(|| p.to_owned());
        let (agency, id, version) = match parts.as_slice() {
            [id] => (None, *id, None),
            [agency, id] => (keyword(agency, &["all", "*"]), *id, None),
            [agency, id, version] => (
                keyword(agency, &["all", "*"]),
                *id,
                keyword(version, &["latest", "all", "*", "~"]),
            ),
            _ => {
                return Err(SdmxError::syntax(format!(
                    "flowRef `{}` must be ID, AGENCY,ID or AGENCY,ID,VERSION",
                    shorten(s)
                )))
            }
        };
        if id.is_empty() {
            return Err(SdmxError::syntax(format!(
                "flowRef `{}` has no dataflow id",
                shorten(s)
            )));
        }
        Ok(FlowRef {
            agency,
            id: id.to_owned(),
            version,
        })
    }
}

/// The dimension at the observation level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObsDimension {
    Time,
    /// A flat view: every observation with its full key.
    All,
    /// A cross-sectional view over one of the key's dimensions (its position in the key).
    Dimension(usize),
}

/// `detail` of a data query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataDetail {
    Full,
    DataOnly,
    SeriesKeysOnly,
    NoData,
}

impl DataDetail {
    pub fn parse(value: &str) -> Result<Self, SdmxError> {
        Ok(match value {
            "full" => DataDetail::Full,
            "dataonly" => DataDetail::DataOnly,
            "serieskeysonly" => DataDetail::SeriesKeysOnly,
            "nodata" => DataDetail::NoData,
            _ => {
                return Err(SdmxError::syntax(format!(
                    "parameter `detail` must be full, dataonly, serieskeysonly or nodata, not `{}`",
                    shorten(value)
                )))
            }
        })
    }
    /// Whether observations are written.
    pub fn observations(self) -> bool {
        matches!(self, DataDetail::Full | DataDetail::DataOnly)
    }
    /// Whether attributes are written.
    pub fn attributes(self) -> bool {
        matches!(self, DataDetail::Full | DataDetail::NoData)
    }
}

/// A key in SDMX-REST 1.5 form: one part per dimension, joined by `.`; an empty part is a
/// wildcard and `+` joins alternatives. Returns the codes named per part (`None`: any).
pub fn split_key(key: &str, dimensions: &[&str]) -> Result<Vec<Option<Vec<String>>>, SdmxError> {
    if key.len() > MAX_KEY {
        return Err(SdmxError::syntax(format!(
            "the key has {} bytes; the limit is {MAX_KEY}",
            key.len()
        )));
    }
    let parts: Vec<&str> = key.split('.').collect();
    if parts.len() != dimensions.len() {
        return Err(SdmxError::syntax(format!(
            "key `{}` has {} parts; the dataflow has {} dimensions: {}",
            shorten(key),
            parts.len(),
            dimensions.len(),
            dimensions.join(".")
        )));
    }
    let mut total = 0;
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        if part.is_empty() || part == "*" {
            out.push(None);
            continue;
        }
        let codes: Vec<String> = part.split('+').map(str::to_owned).collect();
        total += codes.len();
        if total > MAX_KEY_CODES {
            return Err(SdmxError::syntax(format!(
                "the key names more than {MAX_KEY_CODES} codes"
            )));
        }
        if codes.iter().any(String::is_empty) {
            return Err(SdmxError::syntax(format!(
                "key `{}` has an empty alternative",
                shorten(key)
            )));
        }
        out.push(Some(codes));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_keep_plus_and_refuse_repeats() {
        let q = parse_query_string(Some("asOf=2025-10-01T00:00:00+00:00&detail=full")).unwrap();
        assert_eq!(q[0].1, "2025-10-01T00:00:00+00:00");
        assert!(parse_query_string(Some("a=1&a=2")).is_err());
        assert!(parse_query_string(Some("a=%zz")).is_err());
    }

    #[test]
    fn date_times_take_a_space_for_a_plus() {
        let t = date_time("asOf", "2025-10-01T00:00:00 09:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2025-09-30T15:00:00+00:00");
        assert_eq!(
            date_time("asOf", "2025-10-01").unwrap().to_rfc3339(),
            "2025-10-01T00:00:00+00:00"
        );
        assert!(date_time("asOf", "yesterday").is_err());
    }

    #[test]
    fn period_bounds() {
        let m = |y: u32, m: u32| y * 12 + m - 1;
        assert_eq!(period_bound("s", "2025", true).unwrap(), m(2025, 1));
        assert_eq!(period_bound("e", "2025", false).unwrap(), m(2025, 12));
        assert_eq!(period_bound("e", "2025-S1", false).unwrap(), m(2025, 6));
        assert_eq!(period_bound("s", "2025-Q3", true).unwrap(), m(2025, 7));
        assert_eq!(period_bound("s", "2025-07", true).unwrap(), m(2025, 7));
        assert_eq!(period_bound("s", "2025-M07", true).unwrap(), m(2025, 7));
        assert_eq!(period_bound("s", "2025-07-15", true).unwrap(), m(2025, 7));
        assert_eq!(period_bound("s", "2025-07-15T10:00:00", true).unwrap(), m(2025, 7));
        for bad in ["25", "2025-S3", "2025-W01", "2025-13", "2025-07-40", "2025x"] {
            assert!(period_bound("s", bad, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_are_bounded() {
        let dims = ["A", "B"];
        assert_eq!(
            split_key("X+Y.", &dims).unwrap(),
            vec![Some(vec!["X".into(), "Y".into()]), None]
        );
        assert!(split_key("X", &dims).is_err());
        assert!(split_key("X+.", &dims).is_err());
        let many = vec!["C"; MAX_KEY_CODES + 1].join("+");
        assert!(split_key(&format!("{many}."), &dims).is_err());
    }
}
