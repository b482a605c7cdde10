//! Consistent probability sampling, as the OpenTelemetry specification defines it
//! ("`TraceState`: Probability Sampling"): every decision compares one randomness value `R` of
//! the trace with a rejection threshold `T` derived from the rate, and keeps iff `R >= T`.
//!
//! `R` is the least significant 56 bits of the trace id (random in ours, and flagged so in
//! what we send: W3C Trace Context level 2), or the caller's explicit `rv` when it sent one.
//! `T` is `(1 - rate) * 2^56`, rounded to 4 significant hex digits (more for small rates), as
//! the specification recommends. Since every participant compares the same `R`, a trace kept
//! at a rate is kept at every higher rate: services and nested `sample_rate`s keep nested
//! subsets.
//!
//! Thresholds travel in `tracestate` as `ot=th:<hex>` (trailing zeros removed), randomness as
//! `ot=rv:<14 hex digits>`.

/// 2^56: thresholds and randomness are 56-bit values; a threshold of 2^56 rejects everything.
pub(crate) const NEVER: u64 = 1 << 56;
/// Significant hex digits a rate is converted with (the specification's recommended default).
const PRECISION: i32 = 4;
/// The most digits a rate is converted with (as in the specification's algorithm).
const MAX_PRECISION: i32 = 12;
/// Hex digits of a 56-bit value.
const DIGITS: usize = 14;
/// The `ot` entry of `tracestate` may not exceed this.
const MAX_OT_LEN: usize = 256;

/// The rejection threshold for keeping `rate` of traces: 0 keeps all, [`NEVER`] none (a rate
/// of 0, below 2^-56, or not a number).
pub(crate) fn threshold(rate: f64) -> u64 {
    if rate >= 1.0 {
        return 0;
    }
    if rate.is_nan() || rate <= 0.0 {
        return NEVER;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss // 2^56 is exact in an f64
    )] // in [0, 2^56)
    let kept = (rate * NEVER as f64).round() as u64;
    if kept == 0 {
        return NEVER;
    }
    // One more digit per leading `f`, so small rates keep their relative precision: the
    // exponent `e` of `rate = m * 2^e`, `m` in [0.5, 1), as `frexp` gives it.
    let exponent = i32::from(u16::try_from((rate.to_bits() >> 52) & 0x7ff).unwrap_or(0)) - 1022;
    let digits = (PRECISION + (-exponent).div_euclid(4)).clamp(1, MAX_PRECISION);
    let exact = NEVER - kept;
    let shift = 4 * (14 - digits.unsigned_abs());
    let half = 1u64 << (shift - 1);
    let rounded = (exact + half) >> shift << shift;
    if rounded >= NEVER {
        // Rounding up would reject everything: round down instead.
        exact >> shift << shift
    } else {
        rounded
    }
}

/// The probability a threshold keeps a trace with: `(2^56 - T) / 2^56`.
#[allow(clippy::cast_precision_loss)] // 56-bit values lose at most 2^-53 relative
pub(crate) fn probability(threshold: u64) -> f64 {
    (NEVER - threshold.min(NEVER)) as f64 / NEVER as f64
}

/// Whether randomness `r` is kept at threshold `t`: `R >= T`, where 0 keeps all and [`NEVER`]
/// none.
pub(crate) fn passes(t: u64, r: u64) -> bool {
    t == 0 || (t < NEVER && r >= t)
}

/// The randomness of a trace id: its least significant 56 bits.
#[allow(clippy::cast_possible_truncation)] // keeping the low bits is the point
pub(crate) fn trace_id_randomness(trace_id: u128) -> u64 {
    (trace_id as u64) & (NEVER - 1)
}

// Here for `otel_context`, which writes a span's `th` too and sits below sampling.
pub(crate) use crate::context::encode_threshold;

/// A `th` value: 1 to 14 hex digits, extended with zeros to 14.
pub(crate) fn decode_threshold(value: &str) -> Option<u64> {
    if value.is_empty() || value.len() > DIGITS || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let t = u64::from_str_radix(value, 16).ok()?;
    Some(t << (4 * (DIGITS - value.len())))
}

/// An `rv` value: exactly 14 lowercase hex digits.
pub(crate) fn decode_randomness(value: &str) -> Option<u64> {
    if value.len() != DIGITS
        || !value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    u64::from_str_radix(value, 16).ok()
}

/// The OpenTelemetry entry of a `tracestate` (`ot=...`): `key:value` sub-keys joined by `;`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct OtState<'a> {
    /// `th`, if valid.
    pub(crate) threshold: Option<u64>,
    /// `rv`, if valid.
    pub(crate) randomness: Option<u64>,
    /// Other well-formed sub-keys, as sent, passed on.
    pub(crate) others: Vec<&'a str>,
}

impl<'a> OtState<'a> {
    /// Reads an `ot` value. Anything malformed is left out: an invalid `th` or `rv` is as if
    /// absent, and a repeated sub-key keeps its first value.
    pub(crate) fn parse(value: &'a str) -> OtState<'a> {
        let mut state = OtState::default();
        let mut seen: Vec<&str> = Vec::new();
        for member in value.split(';') {
            let Some((key, val)) = member.split_once(':') else {
                continue;
            };
            if !valid_key(key) || !valid_value(val) || seen.contains(&key) {
                continue;
            }
            seen.push(key);
            match key {
                "th" => state.threshold = decode_threshold(val),
                "rv" => state.randomness = decode_randomness(val),
                _ => state.others.push(member),
            }
        }
        state
    }

    /// The `ot` value with `threshold` in place of the one read (`None` erases it), or `None`
    /// when nothing is left. Within 256 characters: other sub-keys are dropped from the end
    /// to fit.
    pub(crate) fn with_threshold(&self, threshold: Option<u64>) -> Option<String> {
        let mut parts: Vec<String> = Vec::with_capacity(self.others.len() + 2);
        if let Some(t) = threshold {
            parts.push(format!("th:{}", encode_threshold(t)));
        }
        if let Some(rv) = self.randomness {
            parts.push(format!("rv:{rv:014x}"));
        }
        let fixed = parts.len();
        parts.extend(self.others.iter().map(|&m| m.to_owned()));
        let len = |parts: &[String]| {
            parts.iter().map(String::len).sum::<usize>() + parts.len().saturating_sub(1)
        };
        while len(&parts) > MAX_OT_LEN && parts.len() > fixed {
            parts.pop();
        }
        (!parts.is_empty()).then(|| parts.join(";"))
    }
}

/// `lcalpha *(lcalpha / DIGIT)`.
fn valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// `*(ALPHA / DIGIT / "." / "_" / "-")`.
fn valid_value(value: &str) -> bool {
    value
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's table of 1-in-N rates at the default precision (4), with the
    /// probabilities the thresholds stand for.
    const TABLE: [(f64, &str, f64); 13] = [
        (1.0, "0", 1.0),
        (0.5, "8", 0.5),
        (1.0 / 3.0, "aaab", 0.333_328_247_070_312_5),
        (0.25, "c", 0.25),
        (0.2, "cccd", 0.199_996_948_242_187_5),
        (0.125, "e", 0.125),
        (0.1, "e666", 0.100_006_103_515_625),
        (0.0625, "f", 0.0625),
        (0.01, "fd70a", 0.010_000_228_881_835_938),
        (0.001, "ffbe77", 0.000_999_987_125_396_728_5),
        (0.0001, "fff9724", 0.000_100_001_692_771_911_62),
        (0.00001, "ffff583a", 1.000_007_614_493_37e-5),
        (0.000_001, "ffffef39", 1.000_007_614_493_37e-6),
    ];

    #[test]
    fn rates_convert_to_the_specifications_thresholds() {
        for (rate, th, p) in TABLE {
            let t = threshold(rate);
            assert_eq!(encode_threshold(t), th, "rate {rate}");
            assert_eq!(decode_threshold(th), Some(t), "{th}");
            assert!(
                (probability(t) - p).abs() <= p * 1e-12,
                "{rate}: {}",
                probability(t)
            );
        }
        // The specification's worked example: 1% with 5 digits is 0xfd70a400000000.
        assert_eq!(decode_threshold("fd70a4"), Some(0xfd_70a4_0000_0000));
    }

    #[test]
    fn rates_outside_the_probability_range_keep_all_or_nothing() {
        assert_eq!(threshold(1.5), 0);
        assert_eq!(threshold(0.0), NEVER);
        assert_eq!(threshold(-1.0), NEVER);
        assert_eq!(threshold(f64::NAN), NEVER);
        assert_eq!(threshold(1e-18), NEVER, "below 2^-56");
        // The smallest probability still keeps the largest randomness.
        let t = threshold(2f64.powi(-56));
        assert!(t < NEVER && t > NEVER - (1 << 12), "{t:x}");
        assert!(probability(NEVER).abs() < f64::MIN_POSITIVE);
    }

    #[test]
    fn threshold_and_randomness_values_are_checked() {
        assert_eq!(decode_threshold("0"), Some(0));
        assert_eq!(decode_threshold("C"), Some(0xc0_0000_0000_0000));
        assert_eq!(
            decode_threshold("ffffffffffffff"),
            Some(NEVER - 1),
            "14 digits"
        );
        for bad in ["", "fffffffffffffff", "g", "-1", "+8", " 8", "0x8"] {
            assert_eq!(decode_threshold(bad), None, "{bad:?}");
        }
        assert_eq!(
            decode_randomness("6e6d1a75832a2f"),
            Some(0x6e_6d1a_7583_2a2f)
        );
        for bad in [
            "6e6d1a75832a2",
            "6e6d1a75832a2f0",
            "6E6D1A75832A2F",
            "6e6d1a75832a2g",
        ] {
            assert_eq!(decode_randomness(bad), None, "{bad:?}");
        }
        assert_eq!(
            trace_id_randomness(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
            0xce_929d_0e0e_4736
        );
    }

    #[test]
    fn the_ot_entry_keeps_other_sub_keys_and_drops_what_is_malformed() {
        let ot = OtState::parse("p:8;th:c;rv:6e6d1a75832a2f;k1:13");
        assert_eq!(ot.threshold, Some(0xc0_0000_0000_0000));
        assert_eq!(ot.randomness, Some(0x6e_6d1a_7583_2a2f));
        assert_eq!(ot.others, ["p:8", "k1:13"]);
        assert_eq!(
            ot.with_threshold(Some(threshold(0.1))).as_deref(),
            Some("th:e666;rv:6e6d1a75832a2f;p:8;k1:13")
        );
        assert_eq!(
            ot.with_threshold(None).as_deref(),
            Some("rv:6e6d1a75832a2f;p:8;k1:13")
        );
        // Invalid th / rv, bad keys and values, repeats: left out.
        let ot = OtState::parse("th:xyz;rv:12;Th:8;9x:1;ok:a b;th:8;good:v1.2_3-x;nocolon");
        assert_eq!(ot.threshold, None, "the first th was invalid");
        assert_eq!(ot.randomness, None);
        assert_eq!(ot.others, ["good:v1.2_3-x"]);
        assert_eq!(OtState::parse("").with_threshold(None), None);
        // Within 256 characters: other sub-keys give way to the threshold.
        let long = format!("a:{};b:{}", "x".repeat(200), "y".repeat(100));
        let out = OtState::parse(&long).with_threshold(Some(0)).unwrap();
        assert_eq!(out, format!("th:0;a:{}", "x".repeat(200)));
    }
}
