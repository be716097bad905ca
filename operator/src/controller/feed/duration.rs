//! Durations as the Feed CRD writes them (`retention.time`, `table.commitInterval`):
//! a number and a unit, read into milliseconds.

/// A duration of field `field` as the CRD writes them, `<n>(ms|s|m|h|d|w)`, in
/// milliseconds (positive).
pub fn parse_duration_ms(field: &str, s: &str) -> Result<i64, String> {
    let bad = || format!("{field} {s:?} is not a number with a unit (ms, s, m, h, d, w)");
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = s.split_at(split);
    let n: i64 = number.parse().map_err(|_| bad())?;
    let unit_ms: i64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        _ => return Err(bad()),
    };
    match n.checked_mul(unit_ms) {
        Some(ms) if ms > 0 => Ok(ms),
        _ => Err(bad()),
    }
}
