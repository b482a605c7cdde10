//! Classifying HTTP and LLM API failures: which statuses are worth retrying, and how long a
//! server asked us to wait.
//!
//! The rules are those of the OpenAI and Anthropic SDKs: 408 (request timeout), 409
//! (conflict, e.g. a lock), 429 (rate limited) and every 5xx are retried, as are failures
//! without a response (connection errors, timeouts); a server's `retry-after-ms` or
//! `retry-after` replaces the backoff, up to [`RETRY_AFTER_CAP`].

use std::time::{Duration, SystemTime};

use super::Decision;

/// The longest server-requested wait that is honoured; a longer `retry-after` is cut to this.
pub const RETRY_AFTER_CAP: Duration = Duration::from_mins(1);

/// An error from an HTTP API, as [`classify_http`] needs to see it. Implement it for your
/// client's error type (a few lines over `reqwest::Error`, an SDK error, ...), then write
/// `#[retry(classify = honeyhive_runtime::retry::classify_http)]`.
pub trait HttpFailure {
    /// The status of the response, or `None` when there was no response: a connection error
    /// or a timeout, which are retried.
    fn status(&self) -> Option<u16>;

    /// A header of the response, by lowercase name. Only `retry-after-ms` and `retry-after`
    /// are asked for; the default has none.
    fn header(&self, name: &str) -> Option<&str> {
        let _ = name;
        None
    }
}

/// Whether a status is worth retrying: 408, 409, 429 and 5xx.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 409 | 429 | 500..=599)
}

/// The decision for a response with `status`, honouring a server-requested wait.
pub fn classify_status(status: u16, retry_after: Option<Duration>) -> Decision {
    if !is_retryable_status(status) {
        return Decision::Stop;
    }
    match retry_after {
        Some(wait) => Decision::RetryAfter(wait),
        None => Decision::Retry,
    }
}

/// The decision for an HTTP API error: retry 408, 409, 429, 5xx and failures without a
/// response, after the server's `retry-after-ms` / `retry-after` when it sent one.
///
/// Usable directly as `#[retry(classify = honeyhive_runtime::retry::classify_http)]`.
pub fn classify_http<E: HttpFailure + ?Sized>(error: &E) -> Decision {
    match error.status() {
        None => Decision::Retry,
        Some(status) => classify_status(
            status,
            retry_after(|name| error.header(name), SystemTime::now()),
        ),
    }
}

/// The wait a server asked for, from the `retry-after-ms` header (milliseconds, as OpenAI
/// sends) or else `retry-after` (seconds or an HTTP date, RFC 9110), cut to
/// [`RETRY_AFTER_CAP`]. `header` looks a header up by lowercase name.
pub fn retry_after<'a>(
    header: impl Fn(&str) -> Option<&'a str>,
    now: SystemTime,
) -> Option<Duration> {
    let wait = header("retry-after-ms")
        .and_then(|ms| seconds(ms.trim()).map(|s| s / 1000.0))
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .or_else(|| header("retry-after").and_then(|v| parse_retry_after(v, now)))?;
    Some(wait.min(RETRY_AFTER_CAP))
}

/// Parses a `retry-after` value: a number of seconds (`"2"`, `"1.5"`) or an HTTP date
/// (`"Wed, 21 Oct 2015 07:28:00 GMT"`), as a wait from `now` (zero for a date in the past).
/// Not capped.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Some(secs) = seconds(value) {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A non-negative decimal number.
fn seconds(value: &str) -> Option<f64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    value.parse::<f64>().ok().filter(|s| s.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Failure {
        status: Option<u16>,
        headers: Vec<(&'static str, &'static str)>,
    }

    impl HttpFailure for Failure {
        fn status(&self) -> Option<u16> {
            self.status
        }
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| *v)
        }
    }

    fn failure(status: Option<u16>, headers: &[(&'static str, &'static str)]) -> Failure {
        Failure {
            status,
            headers: headers.to_vec(),
        }
    }

    #[test]
    fn transient_statuses_are_retried_and_client_errors_are_not() {
        for status in [408, 409, 429, 500, 502, 503, 504, 529, 599] {
            assert_eq!(
                classify_http(&failure(Some(status), &[])),
                Decision::Retry,
                "{status}"
            );
        }
        for status in [200, 301, 400, 401, 403, 404, 422, 600] {
            assert_eq!(
                classify_http(&failure(Some(status), &[])),
                Decision::Stop,
                "{status}"
            );
        }
        assert_eq!(classify_http(&failure(None, &[])), Decision::Retry);
    }

    #[test]
    fn retry_after_ms_wins_over_retry_after() {
        let f = failure(
            Some(429),
            &[("retry-after-ms", "1500"), ("retry-after", "30")],
        );
        assert_eq!(
            classify_http(&f),
            Decision::RetryAfter(Duration::from_millis(1500))
        );
        let f = failure(Some(503), &[("retry-after", "2")]);
        assert_eq!(
            classify_http(&f),
            Decision::RetryAfter(Duration::from_secs(2))
        );
    }

    #[test]
    fn a_non_retryable_status_ignores_retry_after() {
        let f = failure(Some(400), &[("retry-after", "2")]);
        assert_eq!(classify_http(&f), Decision::Stop);
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates_and_is_capped() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after(" 1.5 ", now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        for bad in ["", "soon", "-1", "1e3", "Wed, 32 Oct 2015 07:28:30 GMT"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
        let headers =
            |value: &'static str| move |name: &str| (name == "retry-after").then_some(value);
        assert_eq!(retry_after(headers("3600"), now), Some(RETRY_AFTER_CAP));
        assert_eq!(
            retry_after(headers("Wed, 21 Oct 2015 09:28:00 GMT"), now),
            Some(RETRY_AFTER_CAP)
        );
        assert_eq!(retry_after(headers("later"), now), None);
    }
}
