//! When a certificate is due: the expiry levels that drive warnings and health, and the time
//! format of log fields. A leaf: it imports nothing of the crate.

use std::time::{Duration, SystemTime};

/// How close a certificate is to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExpiryLevel {
    Fresh,
    Renew,
    Expired,
}

pub(crate) fn expiry_level(
    not_before: SystemTime,
    not_after: SystemTime,
    now: SystemTime,
) -> ExpiryLevel {
    if now > not_after {
        return ExpiryLevel::Expired;
    }
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    let age = now.duration_since(not_before).unwrap_or_default();
    let remaining = not_after.duration_since(now).unwrap_or_default();
    // The 24-hour rule is for certificates that live longer than a day: one that lives a day
    // or less would otherwise be "due" from its first second (SPIRE SVIDs, 24 h certs).
    let day = Duration::from_secs(24 * 3600);
    if age * 3 >= lifetime * 2 || (lifetime > day && remaining < day) {
        ExpiryLevel::Renew
    } else {
        ExpiryLevel::Fresh
    }
}

/// RFC 3339 in UTC, for log fields.
pub(crate) fn humantime(t: SystemTime) -> String {
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{secs} seconds after the Unix epoch"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_levels_follow_two_thirds_and_one_day() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let day = Duration::from_secs(86_400);
        let end = t0 + day * 30;
        assert_eq!(expiry_level(t0, end, t0 + day), ExpiryLevel::Fresh);
        assert_eq!(expiry_level(t0, end, t0 + day * 20), ExpiryLevel::Renew);
        assert_eq!(expiry_level(t0, end, t0 + day * 19), ExpiryLevel::Fresh);
        let hour = Duration::from_secs(3600);
        // A certificate that lives a day or less is due at 2/3 of its life, not from birth.
        let short = t0 + hour * 20;
        assert_eq!(expiry_level(t0, short, t0 + hour), ExpiryLevel::Fresh);
        assert_eq!(expiry_level(t0, short, t0 + hour * 14), ExpiryLevel::Renew);
        // A longer one is due a day before it ends, whatever its age.
        let year = t0 + day * 365;
        assert_eq!(expiry_level(t0, year, year - hour * 23), ExpiryLevel::Renew);
        let two_days = t0 + hour * 36;
        assert_eq!(
            expiry_level(t0, two_days, t0 + hour * 11),
            ExpiryLevel::Fresh
        );
        assert_eq!(
            expiry_level(t0, two_days, t0 + hour * 13),
            ExpiryLevel::Renew
        );
        assert_eq!(
            expiry_level(t0, end, end + Duration::from_secs(1)),
            ExpiryLevel::Expired
        );
    }

    #[test]
    fn times_print_as_rfc3339() {
        assert_eq!(humantime(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(humantime(t), "2023-11-14T22:13:20Z");
    }
}
