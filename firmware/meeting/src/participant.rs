//! The box's view of the meeting (sans-IO): from each roster it learns, which other
//! participants' (S,G) to join and which to leave, and who is in the meeting.

use std::collections::BTreeMap;

use crate::roster::{Family, ParticipantInfo, Roster, SourceGroup};

/// What changed between two rosters, for one box.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RosterDiff {
    /// Participants to subscribe to (their (S,G) of the chosen family).
    pub join: Vec<ParticipantInfo>,
    /// Channels to leave (participants that left).
    pub leave: Vec<(String, SourceGroup)>,
}

/// Tracks the roster and the box's subscriptions.
#[derive(Debug, Clone)]
pub struct RosterTracker {
    me: String,
    family: Family,
    version: u64,
    subscribed: BTreeMap<String, SourceGroup>,
    roster: Option<Roster>,
}

impl RosterTracker {
    /// A tracker for participant `me`, subscribing to `family` groups.
    pub fn new(me: impl Into<String>, family: Family) -> Self {
        Self { me: me.into(), family, version: 0, subscribed: BTreeMap::new(), roster: None }
    }

    /// Latest roster version seen.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The latest roster.
    pub fn roster(&self) -> Option<&Roster> {
        self.roster.as_ref()
    }

    /// Room names of everyone (self included), in join order.
    pub fn rooms(&self) -> Vec<String> {
        self.roster.as_ref().map(|r| r.participants.iter().map(|p| p.room.clone()).collect()).unwrap_or_default()
    }

    /// The other participants.
    pub fn others(&self) -> Vec<&ParticipantInfo> {
        self.roster.as_ref().map(|r| r.participants.iter().filter(|p| p.id != self.me).collect()).unwrap_or_default()
    }

    /// Whether we are still listed (false after a silence timeout removed us).
    pub fn am_listed(&self) -> bool {
        self.roster.as_ref().is_some_and(|r| r.participants.iter().any(|p| p.id == self.me))
    }

    /// Takes a roster; older versions are ignored. Returns the subscriptions to change.
    pub fn update(&mut self, roster: Roster) -> RosterDiff {
        if roster.version < self.version {
            return RosterDiff::default();
        }
        self.version = roster.version;
        let mut diff = RosterDiff::default();
        let now: BTreeMap<String, &ParticipantInfo> =
            roster.participants.iter().filter(|p| p.id != self.me).map(|p| (p.id.clone(), p)).collect();
        let gone: Vec<String> = self.subscribed.keys().filter(|id| !now.contains_key(*id)).cloned().collect();
        for id in gone {
            if let Some(sg) = self.subscribed.remove(&id) {
                diff.leave.push((id, sg));
            }
        }
        for (id, p) in &now {
            if !self.subscribed.contains_key(id) {
                self.subscribed.insert(id.clone(), p.groups.get(self.family));
                diff.join.push((*p).clone());
            }
        }
        self.roster = Some(roster);
        diff
    }

    /// Every channel currently subscribed (to leave them all at shutdown).
    pub fn subscriptions(&self) -> Vec<SourceGroup> {
        self.subscribed.values().copied().collect()
    }
}
