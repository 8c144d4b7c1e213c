//! Time frames: `[!] [DAYS] [START - END]`, comma-separated, first match wins, in local time.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDateTime, Offset, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;

use super::construct::{self, BuildError};
use super::error::{ErrorKind, ParseError};
use super::list::{self, RawEntry};

/// A time-frame constraint: at which local wall-clock times a job may be handed out.
///
/// Parsed from a comma-separated list of `[!] [DAYS] [START - END]` entries. The first entry
/// containing the instant decides: a plain entry allows, a negated one denies. When none contains
/// it, the instant is denied, unless every entry is negated (then it is allowed). The empty list
/// allows every instant.
///
/// - `DAYS` is a day (`MON`..`SUN` or the English name, any case) or a range `MON-FRI`, which may
///   wrap (`FRI-MON`). No days means every day; days alone mean those whole days.
/// - `START-END` is a half-open window `[START, END)` of `H:MM`/`HH:MM` times; `END` may be
///   `24:00`. `END <= START` crosses midnight: the window starts on the named day and ends on the
///   next (`FRI 22:00-02:00` is Friday 22:00 to Saturday 02:00).
///
/// Windows are wall-clock times of a time zone; [`TimeFrames::allows_at`] converts an instant to
/// that zone first, so skipped local times never occur and repeated ones match twice.
///
/// Deliberate differences from OCO: windows include their start (OCO excludes both ends, at
/// minute resolution, so its "all Saturday" `SAT 0:00-23:59` misses two minutes); an empty window
/// (`12:00-12:00`) is an error rather than silently never matching; a list of only negations allows
/// everything it does not negate.
///
/// # Examples
///
/// ```
/// use oco_core::constraint::TimeFrames;
/// use oco_core::chrono::NaiveDate;
///
/// let frames: TimeFrames = "6:00-7:00,FRI 18:00-23:00,!SAT 11:00-13:00,SAT 0:00-23:59".parse()?;
/// assert_eq!(frames.to_string(), "06:00-07:00, FRI 18:00-23:00, !SAT 11:00-13:00, SAT 00:00-23:59");
///
/// let saturday = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
/// assert!(!frames.allows_local(saturday.and_hms_opt(12, 0, 0).unwrap()));
/// assert!(frames.allows_local(saturday.and_hms_opt(23, 58, 59).unwrap()));
/// assert!(frames.allows_local(saturday.and_hms_opt(6, 59, 59).unwrap()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TimeFrames {
    entries: Vec<TimeFrame>,
}

/// One entry of a [`TimeFrames`] list: days, a window, or both, and whether it is negated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeFrame {
    negated: bool,
    days: Option<DayRange>,
    window: Option<TimeWindow>,
}

/// A day or a range of days, inclusive, possibly wrapping over the weekend (`FRI-MON`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DayRange {
    first: Weekday,
    last: Weekday,
}

/// A daily window `[start, end)` in minutes since local midnight; `end <= start` crosses
/// midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeWindow {
    start: u16,
    end: u16,
}

/// A [`TimeFrames`] compiled to one bit per minute of the week, with first-match already resolved.
///
/// Its answers equal [`TimeFrames::allows_local`] everywhere: windows begin and end on whole
/// minutes, so every second of a minute has the same verdict.
#[derive(Clone, PartialEq, Eq)]
pub struct WeekMatcher {
    bits: [u64; WEEK_WORDS],
}

pub(super) const MINUTES_PER_DAY: u16 = 24 * 60;
pub(super) const MINUTES_PER_WEEK: usize = 7 * MINUTES_PER_DAY as usize;
const WEEK_WORDS: usize = MINUTES_PER_WEEK.div_ceil(64);
/// The days of the week from Monday, as the week's minutes count them.
pub(super) const WEEK: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

impl TimeFrames {
    /// A list of `entries`, in the order given (the first entry containing an instant decides).
    ///
    /// The list must fit the limits of text input, so that it prints as text that parses back to
    /// it: at most [`MAX_ENTRIES`](super::MAX_ENTRIES) entries and a canonical form of at most
    /// [`MAX_INPUT_LEN`](super::MAX_INPUT_LEN) bytes.
    ///
    /// # Errors
    ///
    /// [`BuildError::TooManyEntries`] or [`BuildError::CanonicalTooLong`] when the list exceeds
    /// those limits.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::Weekday;
    /// use oco_core::constraint::{DayRange, TimeFrame, TimeFrames, TimeWindow};
    ///
    /// let weekdays = DayRange::new(Weekday::Mon, Weekday::Fri);
    /// let nights = TimeWindow::new(22 * 60, 6 * 60)?;
    /// let lunch = TimeWindow::new(12 * 60, 13 * 60)?;
    /// let frames = TimeFrames::from_entries([
    ///     TimeFrame::new(None, Some(lunch), true)?,
    ///     TimeFrame::new(Some(weekdays), Some(nights), false)?,
    ///     TimeFrame::new(Some(DayRange::new(Weekday::Sat, Weekday::Sun)), None, false)?,
    /// ])?;
    /// assert_eq!(frames.to_string(), "!12:00-13:00, MON-FRI 22:00-06:00, SAT-SUN");
    /// # Ok::<(), oco_core::constraint::BuildError>(())
    /// ```
    pub fn from_entries(entries: impl IntoIterator<Item = TimeFrame>) -> Result<Self, BuildError> {
        let entries: Vec<TimeFrame> = entries.into_iter().collect();
        construct::check_list_limits(&entries)?;
        Ok(TimeFrames { entries })
    }

    /// Whether this is no constraint at all (the empty list), which allows every instant.
    pub fn is_unconstrained(&self) -> bool {
        self.entries.is_empty()
    }

    /// The parsed entries, in order.
    pub fn entries(&self) -> &[TimeFrame] {
        &self.entries
    }

    /// Whether the constraint allows the local wall-clock time `local`.
    pub fn allows_local(&self, local: NaiveDateTime) -> bool {
        self.allows_week_minute(week_minute(local))
    }

    /// Whether the constraint allows the instant `at`, read as wall-clock time in `zone`.
    pub fn allows_at(&self, at: DateTime<Utc>, zone: Tz) -> bool {
        self.allows_week_minute(local_week_minute(at, zone).0)
    }

    /// The first instant at or after `now` that the constraint allows in `zone`, or `None` if
    /// it allows no instant at all.
    ///
    /// This compiles the list first; to ask repeatedly, compile once and call
    /// [`WeekMatcher::next_open`].
    pub fn next_open(&self, now: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        self.compile().next_open(now, zone)
    }

    /// Compiles the list into a matcher over the minutes of a week.
    pub fn compile(&self) -> WeekMatcher {
        let mut matcher = WeekMatcher {
            bits: [0; WEEK_WORDS],
        };
        matcher.fill(0, MINUTES_PER_WEEK, self.verdict_when_unmatched());
        // Painting from the last entry to the first leaves each minute with its first match.
        for entry in self.entries.iter().rev() {
            entry.for_each_week_range(|start, end| matcher.fill(start, end, !entry.negated));
        }
        matcher
    }

    fn verdict_when_unmatched(&self) -> bool {
        self.entries.iter().all(|entry| entry.negated)
    }

    fn allows_week_minute(&self, week_minute: usize) -> bool {
        let day = WEEK[week_minute / MINUTES_PER_DAY as usize % 7];
        // Invariant: the remainder is below 1440.
        let minute = u16::try_from(week_minute % MINUTES_PER_DAY as usize).unwrap_or(0);
        self.entries
            .iter()
            .find(|entry| entry.contains(day, minute))
            .map_or_else(|| self.verdict_when_unmatched(), |entry| !entry.negated)
    }
}

impl TimeFrame {
    /// An entry for `window` on `days`, denying instead of allowing when `negated`.
    ///
    /// No days means every day; no window means the whole of each day.
    ///
    /// # Errors
    ///
    /// [`BuildError::EmptyFrame`] when both are `None`: the text form has no spelling for such
    /// an entry (write no entry, or a whole-week one such as `MON-SUN`).
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::Weekday;
    /// use oco_core::constraint::{BuildError, DayRange, TimeFrame, TimeWindow};
    ///
    /// let friday_night = TimeFrame::new(
    ///     Some(DayRange::new(Weekday::Fri, Weekday::Fri)),
    ///     Some(TimeWindow::new(22 * 60, 2 * 60)?),
    ///     false,
    /// )?;
    /// assert_eq!(friday_night.to_string(), "FRI 22:00-02:00");
    /// assert_eq!(TimeFrame::new(None, None, true), Err(BuildError::EmptyFrame));
    /// # Ok::<(), BuildError>(())
    /// ```
    pub fn new(
        days: Option<DayRange>,
        window: Option<TimeWindow>,
        negated: bool,
    ) -> Result<Self, BuildError> {
        if days.is_none() && window.is_none() {
            return Err(BuildError::EmptyFrame);
        }
        Ok(TimeFrame {
            negated,
            days,
            window,
        })
    }

    /// Whether the entry denies the times it contains (it was written with `!`).
    pub fn is_negated(&self) -> bool {
        self.negated
    }

    /// The days the entry applies to; `None` means every day.
    pub fn days(&self) -> Option<DayRange> {
        self.days
    }

    /// The daily window; `None` means the whole of each day.
    pub fn window(&self) -> Option<TimeWindow> {
        self.window
    }

    /// Whether the entry covers the local wall-clock time `local`, whether it is negated or not
    /// (what it decides there, if it is the first entry to cover it).
    ///
    /// ```
    /// use oco_core::constraint::TimeFrames;
    /// use oco_core::chrono::NaiveDate;
    ///
    /// let frames: TimeFrames = "!FRI 22:00-02:00".parse()?;
    /// // Saturday 2026-11-28, 01:30.
    /// let saturday = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap().and_hms_opt(1, 30, 0).unwrap();
    /// assert!(frames.entries()[0].contains_local(saturday));
    /// # Ok::<(), oco_core::constraint::ParseError>(())
    /// ```
    pub fn contains_local(&self, local: NaiveDateTime) -> bool {
        self.contains(local.weekday(), minute_of_day(local))
    }

    fn contains(&self, day: Weekday, minute: u16) -> bool {
        let on = |day: Weekday| self.days.is_none_or(|days| days.contains(day));
        match self.window {
            None => on(day),
            Some(window) if window.crosses_midnight() => {
                (minute >= window.start && on(day)) || (minute < window.end && on(day.pred()))
            }
            Some(window) => window.start <= minute && minute < window.end && on(day),
        }
    }

    /// Calls `paint(start, end)` for each range of minutes of the week (Monday 00:00 is 0) that
    /// the entry contains.
    pub(super) fn for_each_week_range(&self, mut paint: impl FnMut(usize, usize)) {
        let day_len = usize::from(MINUTES_PER_DAY);
        for (day, weekday) in WEEK.into_iter().enumerate() {
            if !self.days.is_none_or(|days| days.contains(weekday)) {
                continue;
            }
            let base = day * day_len;
            match self.window {
                None => paint(base, base + day_len),
                Some(window) if window.crosses_midnight() => {
                    paint(base + usize::from(window.start), base + day_len);
                    let next = (day + 1) % 7 * day_len;
                    paint(next, next + usize::from(window.end));
                }
                Some(window) => paint(
                    base + usize::from(window.start),
                    base + usize::from(window.end),
                ),
            }
        }
    }
}

impl DayRange {
    /// The days from `first` to `last`, inclusive, wrapping over Sunday to Monday when `last`
    /// precedes `first`; `first == last` is that day alone.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::chrono::Weekday;
    /// use oco_core::constraint::DayRange;
    ///
    /// let long_weekend = DayRange::new(Weekday::Fri, Weekday::Mon);
    /// assert_eq!(long_weekend.to_string(), "FRI-MON");
    /// assert!(long_weekend.contains(Weekday::Sun));
    /// assert!(!long_weekend.contains(Weekday::Wed));
    /// assert_eq!(DayRange::new(Weekday::Sat, Weekday::Sat).to_string(), "SAT");
    /// ```
    pub fn new(first: Weekday, last: Weekday) -> Self {
        DayRange { first, last }
    }

    /// The first day of the range.
    pub fn first(&self) -> Weekday {
        self.first
    }

    /// The last day of the range (equal to [`DayRange::first`] for a single day).
    pub fn last(&self) -> Weekday {
        self.last
    }

    /// Whether `day` is in the range, wrapping over Sunday to Monday when `last` precedes `first`.
    pub fn contains(&self, day: Weekday) -> bool {
        let first = self.first.num_days_from_monday();
        let last = self.last.num_days_from_monday();
        let day = day.num_days_from_monday();
        if first <= last {
            first <= day && day <= last
        } else {
            day >= first || day <= last
        }
    }
}

impl TimeWindow {
    /// The daily window `[start, end)`, in minutes from local midnight; `end <= start` crosses
    /// midnight, and an `end` of 1440 is `24:00`.
    ///
    /// # Errors
    ///
    /// [`BuildError::StartOutOfRange`] when `start` is above 1439, [`BuildError::EndOutOfRange`]
    /// when `end` is above 1440, and [`BuildError::EmptyWindow`] when they are equal.
    ///
    /// # Examples
    ///
    /// ```
    /// use oco_core::constraint::{BuildError, TimeWindow};
    ///
    /// let night = TimeWindow::new(22 * 60, 6 * 60)?;
    /// assert!(night.crosses_midnight());
    /// assert_eq!(night.to_string(), "22:00-06:00");
    /// assert_eq!(TimeWindow::new(18 * 60, 1440)?.to_string(), "18:00-24:00");
    /// assert_eq!(
    ///     TimeWindow::new(1440, 60),
    ///     Err(BuildError::StartOutOfRange { minute: 1440 })
    /// );
    /// # Ok::<(), BuildError>(())
    /// ```
    pub fn new(start: u16, end: u16) -> Result<Self, BuildError> {
        if start >= MINUTES_PER_DAY {
            return Err(BuildError::StartOutOfRange { minute: start });
        }
        if end > MINUTES_PER_DAY {
            return Err(BuildError::EndOutOfRange { minute: end });
        }
        if start == end {
            return Err(BuildError::EmptyWindow { minute: start });
        }
        Ok(TimeWindow { start, end })
    }

    /// Minutes from local midnight to the start, `0..=1439`.
    pub fn start_minute(&self) -> u16 {
        self.start
    }

    /// Minutes from local midnight to the (exclusive) end, `0..=1440`; 1440 is `24:00`.
    pub fn end_minute(&self) -> u16 {
        self.end
    }

    /// Whether the window ends on the next day (`end <= start`).
    pub fn crosses_midnight(&self) -> bool {
        self.end <= self.start
    }
}

impl WeekMatcher {
    /// Whether the constraint allows the local wall-clock time `local`; the same answer as
    /// [`TimeFrames::allows_local`].
    pub fn allows_local(&self, local: NaiveDateTime) -> bool {
        self.bit(week_minute(local))
    }

    /// Whether the constraint allows the instant `at` in `zone`; the same answer as
    /// [`TimeFrames::allows_at`].
    pub fn allows_at(&self, at: DateTime<Utc>, zone: Tz) -> bool {
        self.bit(local_week_minute(at, zone).0)
    }

    /// The first instant at or after `now` that the constraint allows in `zone`, or `None` if it
    /// allows no instant at all.
    ///
    /// The search walks from local minute to local minute where the verdict turns to *allow*, and
    /// across the zone's offset changes, which it locates by comparing offsets at most a day apart.
    /// (A zone that changed its offset and changed it back within one day would be missed between
    /// the two; no zone in the time-zone database does that in the years chrono-tz covers.)
    pub fn next_open(&self, now: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        self.next_with(now, zone, true)
    }

    /// The first instant at or after `now` that the constraint denies in `zone`, or `None` if it
    /// allows every instant: the mirror of [`next_open`](Self::next_open), searched the same way.
    ///
    /// ```
    /// use oco_core::chrono::{TimeZone, Utc};
    /// use oco_core::chrono_tz::Tz;
    /// use oco_core::constraint::TimeFrames;
    ///
    /// let office: TimeFrames = "MON-FRI 08:00-17:00".parse()?;
    /// let matcher = office.compile();
    /// let tuesday_noon = Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap();
    /// let closes = Utc.with_ymd_and_hms(2026, 11, 24, 17, 0, 0).unwrap();
    /// assert_eq!(matcher.next_closed(tuesday_noon, Tz::UTC), Some(closes));
    /// assert_eq!(matcher.next_closed(closes, Tz::UTC), Some(closes));
    /// # Ok::<(), oco_core::constraint::ParseError>(())
    /// ```
    pub fn next_closed(&self, now: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        self.next_with(now, zone, false)
    }

    /// The first instant at or after `now` whose verdict in `zone` is `allowed`.
    fn next_with(&self, now: DateTime<Utc>, zone: Tz, allowed: bool) -> Option<DateTime<Utc>> {
        let mut at = now;
        // Each round either answers or moves `at` to an offset change at least a second later;
        // within a week of local time a minute with the verdict comes unless offset changes keep
        // skipping it, which takes a handful of changes at most.
        for _ in 0..64 {
            let (minute, offset) = local_week_minute(at, zone);
            if self.bit(minute) == allowed {
                return Some(at);
            }
            let distance = self.minutes_to_next(minute, allowed)?;
            let local_minute_start = (at.timestamp() + offset).div_euclid(60) * 60;
            let candidate =
                DateTime::from_timestamp(local_minute_start + distance * 60 - offset, 0)?;
            match first_offset_change(zone, at, candidate) {
                None => return Some(candidate),
                Some(change) => at = change,
            }
        }
        None
    }

    fn bit(&self, minute: usize) -> bool {
        self.bits[minute / 64] >> (minute % 64) & 1 == 1
    }

    fn fill(&mut self, start: usize, end: usize, value: bool) {
        let mut minute = start;
        while minute < end {
            let bit = minute % 64;
            let count = (64 - bit).min(end - minute);
            let mask = if count == 64 {
                u64::MAX
            } else {
                ((1u64 << count) - 1) << bit
            };
            if value {
                self.bits[minute / 64] |= mask;
            } else {
                self.bits[minute / 64] &= !mask;
            }
            minute += count;
        }
    }

    /// Minutes from `minute` forward (wrapping over the week) to the next minute whose verdict
    /// is `allowed`.
    fn minutes_to_next(&self, minute: usize, allowed: bool) -> Option<i64> {
        let next = self
            .next_bit(minute + 1, MINUTES_PER_WEEK, allowed)
            .or_else(|| self.next_bit(0, minute + 1, allowed))?;
        let distance = (next + MINUTES_PER_WEEK - minute) % MINUTES_PER_WEEK;
        i64::try_from(distance).ok()
    }

    /// The first bit in `from..to` that is `value`.
    fn next_bit(&self, from: usize, to: usize, value: bool) -> Option<usize> {
        let flip = if value { 0 } else { u64::MAX };
        let mut word_index = from / 64;
        let mut word = (self.bits.get(word_index)? ^ flip) & (!0u64 << (from % 64));
        loop {
            if word != 0 {
                let found = word_index * 64 + word.trailing_zeros() as usize;
                return (found < to).then_some(found);
            }
            word_index += 1;
            if word_index * 64 >= to {
                return None;
            }
            word = self.bits.get(word_index)? ^ flip;
        }
    }
}

impl fmt::Debug for WeekMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let allowed = (0..MINUTES_PER_WEEK).filter(|&m| self.bit(m)).count();
        f.debug_struct("WeekMatcher")
            .field("allowed_minutes", &allowed)
            .finish()
    }
}

/// The UTC offset of `zone` at `at`, in seconds east of UTC.
fn offset_seconds(zone: Tz, at: DateTime<Utc>) -> i32 {
    zone.offset_from_utc_datetime(&at.naive_utc())
        .fix()
        .local_minus_utc()
}

/// The first whole second in `(after, until]` at which `zone`'s offset differs from the one at
/// `after`.
fn first_offset_change(
    zone: Tz,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    const PROBE_STEP: i64 = 86_400;
    let offset = offset_seconds(zone, after);
    let after = after.timestamp();
    let until = until.timestamp();
    let differs = |second: i64| {
        DateTime::from_timestamp(second, 0).is_some_and(|at| offset_seconds(zone, at) != offset)
    };
    let mut same = after;
    while same < until {
        let probe = (same + PROBE_STEP).min(until);
        if differs(probe) {
            // The offset is `offset` at `same` and differs at `probe`: bisect to the change.
            let mut changed = probe;
            while changed - same > 1 {
                let middle = same + (changed - same) / 2;
                if differs(middle) {
                    changed = middle;
                } else {
                    same = middle;
                }
            }
            return DateTime::from_timestamp(changed, 0);
        }
        same = probe;
    }
    None
}

fn minute_of_day(local: NaiveDateTime) -> u16 {
    // Invariant: hour <= 23 and minute <= 59, so the result is below 1440.
    u16::try_from(local.hour() * 60 + local.minute()).unwrap_or(0)
}

fn week_minute(local: NaiveDateTime) -> usize {
    local.weekday().num_days_from_monday() as usize * usize::from(MINUTES_PER_DAY)
        + usize::from(minute_of_day(local))
}

/// The minute of the week (Monday 00:00 is 0) that `at` falls in on `zone`'s wall clock, and the
/// zone's offset at `at` in seconds.
///
/// Integer arithmetic on the timestamp, so it works up to the ends of `DateTime`'s range, where
/// the local date itself may not be representable.
fn local_week_minute(at: DateTime<Utc>, zone: Tz) -> (usize, i64) {
    let offset = i64::from(offset_seconds(zone, at));
    let local_minutes = (at.timestamp() + offset).div_euclid(60);
    // 1970-01-01, minute 0 of the Unix epoch, was a Thursday: three days into a week.
    let week_minute =
        (local_minutes + 3 * i64::from(MINUTES_PER_DAY)).rem_euclid(MINUTES_PER_WEEK as i64);
    // Invariant: 0 <= week_minute < 10,080.
    (usize::try_from(week_minute).unwrap_or(0), offset)
}

list::text_impls!(TimeFrames);

impl fmt::Display for TimeFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.negated {
            f.write_str("!")?;
        }
        if let Some(days) = self.days {
            write!(f, "{days}")?;
            if self.window.is_some() {
                f.write_str(" ")?;
            }
        }
        if let Some(window) = self.window {
            write!(f, "{window}")?;
        }
        Ok(())
    }
}

impl fmt::Display for DayRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", day_abbreviation(self.first))
        } else {
            write!(
                f,
                "{}-{}",
                day_abbreviation(self.first),
                day_abbreviation(self.last)
            )
        }
    }
}

impl fmt::Display for TimeWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

fn day_abbreviation(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "MON",
        Weekday::Tue => "TUE",
        Weekday::Wed => "WED",
        Weekday::Thu => "THU",
        Weekday::Fri => "FRI",
        Weekday::Sat => "SAT",
        Weekday::Sun => "SUN",
    }
}

/// A cursor over one entry body; errors carry spans relative to the body.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_blank(&mut self) {
        self.pos = self.text.len() - list::trim_blank_start(&self.text[self.pos..]).len();
    }

    /// Advances over bytes matching `pred` and returns the span passed.
    fn take_while(&mut self, pred: impl Fn(u8) -> bool) -> (usize, usize) {
        let start = self.pos;
        while self.peek().is_some_and(&pred) {
            self.pos += 1;
        }
        (start, self.pos)
    }

    fn at_end(&self) -> bool {
        self.pos == self.text.len()
    }

    fn error(&self, kind: ErrorKind, start: usize, end: usize) -> ParseError {
        ParseError::new(kind, start..end)
    }
}

/// Parses one entry body: `[DAYS] [START - END]`.
fn parse_entry(raw: &RawEntry<'_>) -> Result<TimeFrame, ParseError> {
    let mut cursor = Cursor {
        text: raw.body,
        pos: 0,
    };
    let days = match cursor.peek() {
        Some(b) if b.is_ascii_alphabetic() => Some(parse_days(&mut cursor)?),
        _ => None,
    };
    cursor.skip_blank();
    let window = match cursor.peek() {
        None => None,
        Some(b) if b.is_ascii_digit() => Some(parse_window(&mut cursor)?),
        Some(_) if days.is_some() => {
            return Err(cursor.error(ErrorKind::TrailingGarbage, cursor.pos, cursor.text.len()))
        }
        Some(_) => {
            let end = token_end(cursor.text, cursor.pos);
            return Err(cursor.error(ErrorKind::ExpectedDayOrTime, cursor.pos, end));
        }
    };
    cursor.skip_blank();
    if !cursor.at_end() {
        return Err(cursor.error(ErrorKind::TrailingGarbage, cursor.pos, cursor.text.len()));
    }
    Ok(TimeFrame {
        negated: raw.negated,
        days,
        window,
    })
}

fn parse_days(cursor: &mut Cursor<'_>) -> Result<DayRange, ParseError> {
    let first = parse_day(cursor)?;
    let before_dash = cursor.pos;
    cursor.skip_blank();
    if cursor.peek() != Some(b'-') {
        cursor.pos = before_dash;
        return Ok(DayRange { first, last: first });
    }
    let dash = cursor.pos;
    cursor.pos += 1;
    cursor.skip_blank();
    if !cursor.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
        return Err(cursor.error(ErrorKind::MissingDay, dash, dash + 1));
    }
    let last = parse_day(cursor)?;
    Ok(DayRange { first, last })
}

fn parse_day(cursor: &mut Cursor<'_>) -> Result<Weekday, ParseError> {
    const DAYS: [(&str, &str, Weekday); 7] = [
        ("mon", "monday", Weekday::Mon),
        ("tue", "tuesday", Weekday::Tue),
        ("wed", "wednesday", Weekday::Wed),
        ("thu", "thursday", Weekday::Thu),
        ("fri", "friday", Weekday::Fri),
        ("sat", "saturday", Weekday::Sat),
        ("sun", "sunday", Weekday::Sun),
    ];
    let (start, end) = cursor.take_while(|b| b.is_ascii_alphabetic());
    let word = &cursor.text[start..end];
    DAYS.iter()
        .find(|(short, long, _)| {
            word.eq_ignore_ascii_case(short) || word.eq_ignore_ascii_case(long)
        })
        .map(|&(_, _, day)| day)
        .ok_or_else(|| cursor.error(ErrorKind::UnknownDay, start, end))
}

fn parse_window(cursor: &mut Cursor<'_>) -> Result<TimeWindow, ParseError> {
    let start_pos = cursor.pos;
    let start = parse_time(cursor)?;
    if start == MINUTES_PER_DAY {
        return Err(cursor.error(ErrorKind::StartAt24, start_pos, cursor.pos));
    }
    cursor.skip_blank();
    match cursor.peek() {
        None => return Err(cursor.error(ErrorKind::MissingEnd, cursor.pos, cursor.pos)),
        Some(b'-') => cursor.pos += 1,
        Some(_) => {
            return Err(cursor.error(ErrorKind::TrailingGarbage, cursor.pos, cursor.text.len()))
        }
    }
    cursor.skip_blank();
    if cursor.at_end() {
        return Err(cursor.error(ErrorKind::MissingEnd, cursor.pos, cursor.pos));
    }
    let end = parse_time(cursor)?;
    if end == start {
        return Err(cursor.error(ErrorKind::EmptyWindow, start_pos, cursor.pos));
    }
    Ok(TimeWindow { start, end })
}

/// Parses `H:MM` or `HH:MM` (hours up to 24, `24:00` only) into minutes since midnight.
fn parse_time(cursor: &mut Cursor<'_>) -> Result<u16, ParseError> {
    let token_start = cursor.pos;
    let invalid = |cursor: &Cursor<'_>| {
        let end = token_end(cursor.text, token_start);
        cursor.error(ErrorKind::InvalidTime, token_start, end)
    };
    let (hour_start, hour_end) = cursor.take_while(|b| b.is_ascii_digit());
    if !(1..=2).contains(&(hour_end - hour_start)) || cursor.peek() != Some(b':') {
        return Err(invalid(cursor));
    }
    cursor.pos += 1;
    let (minute_start, minute_end) = cursor.take_while(|b| b.is_ascii_digit());
    if minute_end - minute_start != 2 {
        return Err(invalid(cursor));
    }
    if cursor.peek() == Some(b':') {
        let end = token_end(cursor.text, token_start);
        return Err(cursor.error(ErrorKind::SecondsNotAllowed, token_start, end));
    }
    if cursor
        .peek()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'.')
    {
        return Err(invalid(cursor));
    }
    // Invariant: at most two ASCII digits each, so both fit in a u8.
    let hour: u8 = cursor.text[hour_start..hour_end].parse().unwrap_or(u8::MAX);
    let minute: u8 = cursor.text[minute_start..minute_end]
        .parse()
        .unwrap_or(u8::MAX);
    if minute > 59 {
        return Err(cursor.error(
            ErrorKind::MinuteOutOfRange { minute },
            minute_start,
            minute_end,
        ));
    }
    if hour > 24 || (hour == 24 && minute != 0) {
        return Err(cursor.error(ErrorKind::HourOutOfRange { hour }, hour_start, hour_end));
    }
    Ok(u16::from(hour) * 60 + u16::from(minute))
}

/// The end of the time-like token starting at `start` (letters and digits of any script, `:`
/// and `.`), at least one character long.
fn token_end(text: &str, start: usize) -> usize {
    let rest = &text[start..];
    let len = rest
        .find(|c: char| !(c.is_alphanumeric() || c == ':' || c == '.'))
        .unwrap_or(rest.len());
    let first = rest.chars().next().map_or(0, char::len_utf8);
    start + len.max(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, NaiveDate};
    use proptest::prelude::*;

    fn weekday() -> impl Strategy<Value = Weekday> {
        (0usize..7).prop_map(|i| WEEK[i])
    }

    fn frame() -> impl Strategy<Value = TimeFrame> {
        let days = proptest::option::of(
            (weekday(), weekday()).prop_map(|(first, last)| DayRange { first, last }),
        );
        let window = proptest::option::of(
            (0u16..MINUTES_PER_DAY, 0u16..=MINUTES_PER_DAY)
                .prop_filter("empty window", |(start, end)| start != end)
                .prop_map(|(start, end)| TimeWindow { start, end }),
        );
        (any::<bool>(), days, window)
            .prop_filter("a day or a window", |(_, days, window)| {
                days.is_some() || window.is_some()
            })
            .prop_map(|(negated, days, window)| TimeFrame {
                negated,
                days,
                window,
            })
    }

    fn frames(max_len: usize) -> impl Strategy<Value = TimeFrames> {
        proptest::collection::vec(frame(), 0..max_len).prop_map(|entries| TimeFrames { entries })
    }

    /// Any second of the fortnight starting Monday 2026-11-23.
    fn local_time() -> impl Strategy<Value = NaiveDateTime> {
        (0i64..14 * 86_400).prop_map(|second| {
            NaiveDate::from_ymd_opt(2026, 11, 23)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|start| start + Duration::seconds(second))
                .unwrap()
        })
    }

    const ZONES: [Tz; 7] = [
        Tz::UTC,
        Tz::Europe__Berlin,
        Tz::America__New_York,
        Tz::Australia__Lord_Howe,
        Tz::Asia__Kolkata,
        Tz::Asia__Tokyo,
        Tz::America__St_Johns,
    ];

    /// Instants near this decade's DST transitions of the zones above, and anywhere in 1980..2036.
    fn instant() -> impl Strategy<Value = DateTime<Utc>> {
        let near = [
            "2026-03-29T01:00:00Z",
            "2026-10-25T01:00:00Z",
            "2026-03-08T07:00:00Z",
            "2026-11-01T06:00:00Z",
            "2026-04-04T15:00:00Z",
            "2026-10-03T15:30:00Z",
            "2025-11-02T04:30:00Z",
        ]
        .map(|text| DateTime::parse_from_rfc3339(text).unwrap().to_utc());
        prop_oneof![
            (0usize..near.len(), -4 * 86_400i64..4 * 86_400)
                .prop_map(move |(i, offset)| near[i] + Duration::seconds(offset)),
            (315_532_800i64..2_082_758_400)
                .prop_map(|second| DateTime::from_timestamp(second, 0).unwrap()),
        ]
    }

    proptest! {
        #[test]
        fn display_then_parse_gives_the_same_value(frames in frames(10)) {
            let text = frames.to_string();
            let reparsed: TimeFrames = text.parse().map_err(|e: ParseError| TestCaseError::fail(e.render(&text)))?;
            prop_assert_eq!(&reparsed, &frames);
            prop_assert_eq!(reparsed.to_string(), text);
        }

        #[test]
        fn compiled_matcher_equals_plain_evaluation(
            frames in frames(12),
            times in proptest::collection::vec(local_time(), 64),
        ) {
            let matcher = frames.compile();
            for time in times {
                prop_assert_eq!(matcher.allows_local(time), frames.allows_local(time), "{} for `{}`", time, frames);
            }
        }

        #[test]
        fn compiled_matcher_equals_plain_evaluation_in_zones(
            frames in frames(6),
            zone in (0usize..ZONES.len()).prop_map(|i| ZONES[i]),
            at in instant(),
        ) {
            prop_assert_eq!(frames.compile().allows_at(at, zone), frames.allows_at(at, zone));
        }

        /// `next_open` is allowed, and no earlier instant from `now` is: instants allowed begin at
        /// whole local minutes, which are whole UTC minutes in these zones since 1980.
        #[test]
        fn next_open_is_the_first_allowed_instant(
            frames in frames(4),
            zone in (0usize..ZONES.len()).prop_map(|i| ZONES[i]),
            now in instant(),
        ) {
            let open = frames.next_open(now, zone);
            let scan_until = open.unwrap_or(now + Duration::days(8));
            if let Some(open) = open {
                prop_assert!(open >= now);
                prop_assert!(frames.allows_at(open, zone), "{} is not allowed by `{}`", open, frames);
            }
            let mut at = now;
            while at < scan_until {
                prop_assert!(!frames.allows_at(at, zone), "{} is allowed by `{}` before {:?}", at, frames, open);
                let next_minute = (at.timestamp().div_euclid(60) + 1) * 60;
                at = DateTime::from_timestamp(next_minute, 0).unwrap();
            }
        }
    }
}
