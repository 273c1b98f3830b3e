//! Times since 1970 as people and protocols write them, in UTC: the end of
//! a ban (`2026-12-14 04:21 UTC`) and IRC's `server-time`
//! (`2026-12-07T04:01:18.123Z`), both ways. Days and dates convert by
//! Howard Hinnant's `civil_from_days` and `days_from_civil` (proleptic
//! Gregorian calendar), so any time is exact and nothing reads the
//! machine's time zone.

/// A time in milliseconds since 1970, taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
    pub millisecond: i64,
}

impl Utc {
    /// The date and time of `at_ms` milliseconds since 1970.
    pub fn of(at_ms: i64) -> Utc {
        let (seconds, millisecond) = (at_ms.div_euclid(1000), at_ms.rem_euclid(1000));
        let (days, of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
        let (year, month, day) = civil_from_days(days);
        let (hour, minute, second) = (of_day / 3600, of_day % 3600 / 60, of_day % 60);
        Utc { year, month, day, hour, minute, second, millisecond }
    }

    /// Milliseconds since 1970; `None` for a field out of its range (a leap
    /// second, 60, reads as the next second).
    pub fn to_ms(self) -> Option<i64> {
        let Utc { year, month, day, hour, minute, second, millisecond } = self;
        let fits = (1..=12).contains(&month)
            && (1..=31).contains(&day)
            && (0..24).contains(&hour)
            && (0..60).contains(&minute)
            && (0..=60).contains(&second)
            && (0..1000).contains(&millisecond);
        let days = days_from_civil(year, month, day);
        fits.then(|| ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millisecond)
    }
}

/// A day since 1970 as (year, month, day).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// The inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_take_apart_and_back_across_leap_days_and_centuries() {
        let leap = Utc::of(951_782_400_000);
        assert_eq!((leap.year, leap.month, leap.day), (2000, 2, 29));
        let before_1970 = Utc::of(-1);
        assert_eq!(
            (before_1970.year, before_1970.second, before_1970.millisecond),
            (1969, 59, 999)
        );
        for at_ms in
            [0, -1, 951_782_400_000, 1_796_616_078_123, 4_102_444_800_000, -2_208_988_800_000]
        {
            assert_eq!(Utc::of(at_ms).to_ms(), Some(at_ms), "{at_ms}");
        }
        assert_eq!(Utc { month: 13, ..Utc::of(0) }.to_ms(), None);
        assert_eq!(Utc { hour: 24, ..Utc::of(0) }.to_ms(), None);
    }
}
