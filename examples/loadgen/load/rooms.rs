//! The receivers' accounts added up room by room (`--rooms`): what each room's members expected
//! and got, its duplicates and misrouted lines, and its latency; reported as how many rooms fell
//! short, the worst room, and the spread of the rooms' percentiles, since a thousand rows would
//! drown the JSON line.

use serde_json::{Value, json};

use super::account::Account;
use crate::metrics::{Histogram, Percentiles};
use crate::outcome::round;

/// One room's members' accounts added up.
#[derive(Debug, Default, Clone)]
pub struct Room {
    pub members: u64,
    pub expected: u64,
    pub delivered: u64,
    pub duplicates: u64,
    pub misrouted: u64,
    pub latency: Histogram,
}

impl Room {
    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.delivered)
    }
}

/// Every room of a run, by number.
#[derive(Debug, Default)]
pub struct ByRoom {
    pub rooms: Vec<Room>,
}

impl ByRoom {
    pub fn of(accounts: &[Account], rooms: usize) -> Self {
        let mut by_room = vec![Room::default(); rooms.max(1)];
        for a in accounts {
            let room = &mut by_room[a.room];
            room.members += 1;
            room.expected += a.expected;
            room.delivered += a.fresh;
            room.duplicates += a.duplicates;
            room.misrouted += a.misrouted;
            room.latency.merge(&a.latency);
            room.latency.merge(&a.latency_cross);
        }
        ByRoom { rooms: by_room }
    }

    /// The room that lost most (the first of equals), if any lost anything.
    fn worst(&self) -> Option<(usize, &Room)> {
        let (index, room) =
            self.rooms.iter().enumerate().max_by_key(|(i, r)| (r.lost(), std::cmp::Reverse(*i)))?;
        (room.lost() > 0).then_some((index, room))
    }

    fn count(&self, test: impl Fn(&Room) -> bool) -> usize {
        self.rooms.iter().filter(|r| test(r)).count()
    }

    /// Lowest, median and highest over the rooms that got anything.
    fn spread(&self, pick: impl Fn(&Percentiles) -> f64) -> Option<[f64; 3]> {
        let mut values: Vec<f64> = self
            .rooms
            .iter()
            .filter(|r| r.delivered > 0)
            .map(|r| pick(&r.latency.percentiles()))
            .collect();
        values.sort_by(f64::total_cmp);
        Some([*values.first()?, values[values.len() / 2], *values.last()?])
    }

    pub fn to_json(&self) -> Value {
        let spread = |pick: fn(&Percentiles) -> f64| {
            self.spread(pick).map(|[min, median, max]| {
                json!({ "min": round(min, 1), "median": round(median, 1), "max": round(max, 1) })
            })
        };
        let members = |f: fn(&Room) -> u64| self.rooms.iter().map(f);
        json!({
            "count": self.rooms.len(),
            "members_min": members(|r| r.members).min(),
            "members_max": members(|r| r.members).max(),
            "expected_min": members(|r| r.expected).min(),
            "expected_max": members(|r| r.expected).max(),
            "with_loss": self.count(|r| r.lost() > 0),
            "with_duplicates": self.count(|r| r.duplicates > 0),
            "with_misrouted": self.count(|r| r.misrouted > 0),
            "worst": self.worst().map(|(index, r)| json!({
                "room": index, "lost": r.lost(), "expected": r.expected,
            })),
            "latency_p50_us": spread(|p| p.p50),
            "latency_p99_us": spread(|p| p.p99),
        })
    }

    pub fn summary(&self) -> String {
        let ms = |pick: fn(&Percentiles) -> f64| {
            self.spread(pick)
                .map(|[min, median, max]| {
                    format!("{:.2}/{:.2}/{:.2} ms", min / 1e3, median / 1e3, max / 1e3)
                })
                .unwrap_or_else(|| "-".to_owned())
        };
        format!(
            "  {} rooms: {} lost something{}, {} got duplicates, {} got lines of other rooms; \
             per-room p50 {} and p99 {} (min/median/max)\n",
            self.rooms.len(),
            self.count(|r| r.lost() > 0),
            self.worst()
                .map(|(index, r)| format!(" (worst r{index}: {} of {})", r.lost(), r.expected))
                .unwrap_or_default(),
            self.count(|r| r.duplicates > 0),
            self.count(|r| r.misrouted > 0),
            ms(|p| p.p50),
            ms(|p| p.p99),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(room: usize, expected: u64, fresh: u64, latency_us: u64) -> Account {
        let mut a = Account::new(expected, 1, expected.max(1));
        a.room = room;
        a.fresh = fresh;
        for _ in 0..fresh {
            a.latency.record(latency_us * 1000);
        }
        a
    }

    #[test]
    fn rooms_add_up_their_members_and_the_worst_is_named() {
        let mut late = account(1, 10, 10, 900);
        late.duplicates = 2;
        let mut strayed = account(2, 10, 10, 100);
        strayed.misrouted = 1;
        let accounts = [account(0, 10, 10, 100), account(0, 10, 9, 100), late, strayed];
        let by_room = ByRoom::of(&accounts, 4);
        let lost: Vec<u64> = by_room.rooms.iter().map(Room::lost).collect();
        assert_eq!(lost, [1, 0, 0, 0]);
        assert_eq!(by_room.rooms[0].members, 2);
        let json = by_room.to_json();
        assert_eq!(json["with_loss"], 1);
        assert_eq!(json["with_duplicates"], 1);
        assert_eq!(json["with_misrouted"], 1);
        assert_eq!(json["worst"]["room"], 0);
        assert_eq!(json["members_min"], 0, "room 3 has nobody");
        let p99 = &json["latency_p99_us"];
        assert!(p99["max"].as_f64().is_some_and(|v| (v - 900.0).abs() < 10.0), "{p99}");
        assert!(p99["min"].as_f64().is_some_and(|v| (v - 100.0).abs() < 1.0), "{p99}");
    }
}
